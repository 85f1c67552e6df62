"""Iterate over the files of a tar archive held in memory, fast.

Webdataset shards are plain ustar archives of small files; Python's `tarfile` spends ~100 µs per member
on header objects we don't need. This walks the 512-byte headers directly and falls back to `tarfile`
for anything unusual (pax or GNU long-name headers, sparse files).
"""

from __future__ import annotations

import io
import tarfile
from typing import Iterator

BLOCK = 512
REGULAR_FILE_TYPES = (b"0", b"\x00")


def iter_tar_members(data: bytes) -> Iterator[tuple[str, bytes]]:
    """(name, content) of every regular file, in archive order."""
    view = memoryview(data)
    offset = 0
    while offset + BLOCK <= len(data):
        header = data[offset : offset + BLOCK]
        if header.count(0) == BLOCK:  # end-of-archive marker
            return
        typeflag = header[156:157]
        if typeflag not in REGULAR_FILE_TYPES and typeflag != b"5":
            yield from _iter_with_tarfile(data)
            return
        name = header[0:100].split(b"\0", 1)[0].decode("utf-8")
        prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8")
        if prefix:
            name = f"{prefix}/{name}"
        size = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
        start = offset + BLOCK
        if start + size > len(data):
            raise tarfile.ReadError(f"truncated archive: member {name!r} needs {size} bytes, {len(data) - start} left")
        if typeflag in REGULAR_FILE_TYPES:
            yield name, bytes(view[start : start + size])
        offset = start + (size + BLOCK - 1) // BLOCK * BLOCK
    # Every tar writer ends with zero blocks; without them the file was cut short (often on a block boundary).
    raise tarfile.ReadError(f"truncated archive: no end-of-archive marker after {offset} bytes")


def _iter_with_tarfile(data: bytes) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for member in archive:
            if member.isfile():
                yield member.name, archive.extractfile(member).read()
