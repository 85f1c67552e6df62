"""An exclusive lock beside a storage URI, for work that several runs on one machine may start at once
(generating the same content-addressed dataset). Local paths get an `fcntl` lock file; object stores have
no locks, so on s3:// this does nothing and concurrent writers must be idempotent (same key, same bytes)."""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Iterator

from vlp.platform.storage.uris import is_s3


@contextlib.contextmanager
def exclusive(uri: str) -> Iterator[None]:
    if is_s3(uri):
        yield
        return
    lock_path = Path(f"{uri.rstrip('/')}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
