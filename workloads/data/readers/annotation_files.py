"""What the annotation-file readers (RefCOCO, VQA) share: JSON read with errors that name the file and the field,
and the images of a folder found by name, listed once (one listing, not a request per image, on S3)."""

from __future__ import annotations

import json
from typing import Any

from vlp.platform.errors import StorageError
from vlp.platform.storage import open_storage
from vlp.workloads.data.readers.records import is_image


def read_json(uri: str) -> Any:
    storage = open_storage(uri)
    if not storage.exists(uri):
        raise StorageError(f"{uri}: missing")
    try:
        return json.loads(storage.read_bytes(uri))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StorageError(f"{uri}: not JSON ({err})") from None


def field(entry: Any, key: str, where: str, kind: type | tuple[type, ...] = object) -> Any:
    """entry[key], or one line naming the file, the entry and the key when it is missing or of the wrong kind."""
    if not isinstance(entry, dict) or key not in entry:
        raise StorageError(f"{where}: no {key!r} field")
    value = entry[key]
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise StorageError(f"{where}: {key!r} should be {names}, found {type(value).__name__}")
    return value


def xywh_box(bbox: Any, where: str, width: float | None, height: float | None) -> list[float]:
    """COCO's [x, y, w, h] as [x0, y0, x1, y1], checked to be a non-empty box inside the image (half a pixel of
    slack: COCO's float boxes overshoot the border by rounding)."""
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox):
        raise StorageError(f"{where}: bbox should be [x, y, w, h] numbers, found {str(bbox)[:60]}")
    x, y, w, h = bbox
    box = [x, y, x + w, y + h]
    if w <= 0 or h <= 0:
        raise StorageError(f"{where}: bbox {bbox} is empty (w and h must be > 0)")
    check_inside(box, where, width, height)
    return box


def check_inside(box: list[float], where: str, width: float | None, height: float | None) -> None:
    if width is None or height is None:
        return
    slack = 0.5
    if box[0] < -slack or box[1] < -slack or box[2] > width + slack or box[3] > height + slack:
        raise StorageError(f"{where}: box {[round(v, 2) for v in box]} lies outside the {width:g}x{height:g} image")


def image_index(folder: str) -> dict[str, str]:
    """Relative path below `folder` -> URI, for every image under it."""
    prefix = folder.rstrip("/") + "/"
    return {uri[len(prefix):]: uri for uri in open_storage(folder).list(prefix) if is_image(uri)}
