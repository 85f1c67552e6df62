"""Local-disk storage. Writes go to a temporary file in the same directory and are renamed into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from vlp.platform.errors import StorageError


class LocalStorage:
    def read_bytes(self, uri: str) -> bytes:
        return self._existing(uri).read_bytes()

    def write_bytes(self, uri: str, data: bytes) -> None:
        self._atomic_write(Path(uri), lambda handle: handle.write(data))

    def open_read(self, uri: str) -> BinaryIO:
        return self._existing(uri).open("rb")

    def upload_file(self, local_path: Path, uri: str) -> None:
        with open(local_path, "rb") as source:
            self._atomic_write(Path(uri), lambda handle: shutil.copyfileobj(source, handle, 1 << 20))

    def download_file(self, uri: str, local_path: Path) -> None:
        with self._existing(uri).open("rb") as source:
            self._atomic_write(Path(local_path), lambda handle: shutil.copyfileobj(source, handle, 1 << 20))

    def exists(self, uri: str) -> bool:
        return Path(uri).is_file()

    def list(self, prefix_uri: str) -> Iterator[str]:
        root = Path(prefix_uri)
        if root.is_dir():
            yield from sorted(str(path) for path in root.rglob("*") if path.is_file() and not path.name.startswith(".tmp-"))
        else:
            parent = root.parent
            if parent.is_dir():
                yield from sorted(str(p) for p in parent.iterdir() if p.is_file() and str(p).startswith(prefix_uri))

    def delete(self, uri: str) -> None:
        Path(uri).unlink(missing_ok=True)

    @staticmethod
    def _existing(uri: str) -> Path:
        path = Path(uri)
        if not path.is_file():
            raise StorageError(f"{uri}: no such file")
        return path

    @staticmethod
    def _atomic_write(path: Path, write) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
