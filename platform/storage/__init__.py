"""One storage interface over local paths and `s3://` URIs.

`open_storage(uri)` picks the implementation from the URI; swap in your own by implementing
`vlp.platform.storage.protocol.Storage` and passing it where a `storage=` argument is taken.
"""

from __future__ import annotations

from functools import lru_cache

from vlp.platform.storage.protocol import Storage
from vlp.platform.storage.uris import is_s3, join


def open_storage(uri: str) -> Storage:
    return _s3() if is_s3(uri) else _local()


@lru_cache(maxsize=1)
def _s3():
    from vlp.platform.storage.s3 import S3Storage

    return S3Storage()


@lru_cache(maxsize=1)
def _local():
    from vlp.platform.storage.local import LocalStorage

    return LocalStorage()


__all__ = ["Storage", "open_storage", "join", "is_s3"]
