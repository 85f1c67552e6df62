"""Storage URIs: parse, join and check them (no `..`, no empty segments) in one place."""

from __future__ import annotations

import re

from vlp.platform.errors import StorageError

BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


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
    if segment in ("", ".", "..") or "\\" in segment or any(ord(char) < 0x20 for char in segment):
        raise StorageError(f"invalid object key segment {segment!r}: use plain names without '..', empty parts or control characters")


def check_uri(uri: str) -> None:
    """A URI a user gave: an s3:// key may not hold `..` or empty parts; no URI may hold control characters.
    (A local path may say `../data`: it names a place on the user's own disk.)"""
    if any(ord(char) < 0x20 for char in uri):
        raise StorageError(f"{uri!r}: contains control characters")
    if is_s3(uri):
        _, key = split_s3(uri)
        for segment in key.rstrip("/").split("/") if key.rstrip("/") else []:
            check_segment(segment)


def split_s3(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b` -> (`bucket`, `a/b`)."""
    if not is_s3(uri):
        raise StorageError(f"{uri}: not an s3:// URI")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise StorageError(f"{uri}: missing bucket name (expected s3://bucket/prefix)")
    if "@" in bucket or ":" in bucket:
        # Never echo it: this is where someone put `key:secret@bucket`.
        raise StorageError("s3:// URI holds credentials or a port before the bucket; give s3://bucket/prefix and set AWS_* in the environment")
    if not BUCKET_NAME.match(bucket):
        raise StorageError(f"{uri}: {bucket!r} is not a valid bucket name (3-63 lowercase letters, digits, dots and dashes)")
    return bucket, key
