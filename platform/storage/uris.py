"""Storage URIs: parse, join and check them (no `..`, no empty segments) in one place."""

from __future__ import annotations

from vlp.platform.errors import StorageError


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def join(base: str, *parts: str) -> str:
    """Join key parts onto a base URI; each part is checked so a name can never escape the base."""
    joined = base.rstrip("/")
    for part in parts:
        for segment in str(part).strip("/").split("/"):
            check_segment(segment)
            joined = f"{joined}/{segment}"
    return joined


def check_segment(segment: str) -> None:
    if segment in ("", ".", "..") or "\\" in segment or "\x00" in segment:
        raise StorageError(f"invalid object key segment {segment!r}: use plain names without '..' or empty parts")


def split_s3(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b` -> (`bucket`, `a/b`)."""
    if not is_s3(uri):
        raise StorageError(f"{uri}: not an s3:// URI")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise StorageError(f"{uri}: missing bucket name (expected s3://bucket/prefix)")
    return bucket, key
