"""One storage interface over local paths and `s3://` URIs.

`open_storage(uri)` picks the implementation from the URI; swap in your own by implementing
`vlp.platform.storage.protocol.Storage` and passing it where a `storage=` argument is taken.
"""

from __future__ import annotations

from functools import lru_cache

from vlp.platform.storage.protocol import Storage
from vlp.platform.storage.uris import is_s3, join


def open_storage(uri: str, retry_seconds: float | None = None) -> Storage:
    """The storage for `uri`. `retry_seconds` bounds how long S3 operations ride out an outage (default:
    VLP_STORAGE_RETRY_SECONDS); checks that a user waits on pass a short one."""
    if not is_s3(uri):
        return _local()
    if retry_seconds is None:
        return _s3()
    from vlp.platform.storage.s3 import S3Storage

    return S3Storage(retry_seconds=retry_seconds)


@lru_cache(maxsize=1)
def _s3():
    from vlp.platform.storage.s3 import S3Storage

    return S3Storage()


@lru_cache(maxsize=1)
def _local():
    from vlp.platform.storage.local import LocalStorage

    return LocalStorage()


__all__ = ["Storage", "open_storage", "join", "is_s3"]
