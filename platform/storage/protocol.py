"""The storage interface: every byte vlp reads or writes (shards, checkpoints, results) goes through it."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Iterator, Protocol


class Storage(Protocol):
    """Objects addressed by full URIs (`/abs/path/key` or `s3://bucket/key`). Writes are all-or-nothing."""

    def read_bytes(self, uri: str) -> bytes: ...

    def write_bytes(self, uri: str, data: bytes) -> None: ...

    def open_read(self, uri: str) -> BinaryIO: ...

    def upload_file(self, local_path: Path, uri: str) -> None: ...

    def download_file(self, uri: str, local_path: Path) -> None: ...

    def exists(self, uri: str) -> bool: ...

    def list(self, prefix_uri: str) -> Iterator[str]:
        """Every object URI under the prefix, sorted."""
        ...

    def delete(self, uri: str) -> None: ...
