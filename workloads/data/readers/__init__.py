"""Readers for evaluation and domain-generalization data, one module per format, all yielding `EvalRecord`s.

`open_source(uri, format)` picks the reader; `format="auto"` decides from the URI: a `.csv`/`.tsv`
table, CLIP_benchmark's webdataset layout (`{split}/nshards.txt`), a folder of `*.tar` shards, RefCOCO-style
referring expressions (refer's `instances.json` + `refs(…).p`, or a `.json` file in MDETR's layout), VQA-style
questions (`*questions.json` + `*annotations.json`), or image folders one (`class/`) or two (`domain/class/`) deep.
Local paths and `s3://` URIs work alike (everything is read through `vlp.platform.storage`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vlp.platform.errors import StorageError
from vlp.platform.storage import open_storage
from vlp.workloads.data.readers.records import EvalRecord, EvalSource, is_image

Format = Literal["auto", "wds", "clip_benchmark", "csv", "folder", "domainbed", "refcoco", "vqa", "video"]
FORMATS = ("auto", "wds", "clip_benchmark", "csv", "folder", "domainbed", "refcoco", "vqa", "video")


@dataclass(frozen=True)
class ReaderOptions:
    """Where each format keeps its labels; every field has a default that fits vlp's own datasets."""

    label_field: str = "shape"
    """Shards: the `json` field holding the class."""
    domain_field: str = "style"
    """Shards: the `json` field holding the domain."""
    image_column: str = "filepath"
    """Tables: the column holding image paths."""
    caption_column: str = "title"
    """Tables: the column holding captions."""
    label_column: str | None = None
    """Tables: the column holding the class, if any."""
    domain_column: str | None = None
    """Tables: the column holding the domain, if any."""
    separator: str | None = None
    """Tables: the field separator (default: tab for .tsv, comma otherwise)."""
    classnames: tuple[str, ...] = ()
    """Class names in label order; default: what the dataset says (manifest, classnames.txt, folder names)."""
    split: str = "test"
    """CLIP_benchmark's layout: the split folder to read (`test/`, `train/`, ...). RefCOCO (refer's layout): the refs'
    split, as refer.py selects it (`test` takes testA and testB; `all` every ref). VQA: which questions file, where
    a folder holds several."""
    image_root: str | None = None
    """RefCOCO and VQA: the folder holding the images (default: `images/` beside the annotations; VQA also `<subtype>/`)."""


def open_source(uri: str, format: Format = "auto", options: ReaderOptions = ReaderOptions()) -> EvalSource:
    format = detect_format(uri) if format == "auto" else format
    if format == "wds":
        from vlp.workloads.data.readers.webdataset_shards import open_shards

        return open_shards(uri, options.label_field, options.domain_field, options.classnames)
    if format == "clip_benchmark":
        from vlp.workloads.data.readers.clip_benchmark import open_clip_benchmark

        return open_clip_benchmark(uri, options.split, options.classnames)
    if format == "csv":
        from vlp.workloads.data.readers.csv_table import open_table

        return open_table(
            uri, options.image_column, options.caption_column, options.label_column, options.domain_column,
            options.separator, options.classnames,
        )
    if format == "folder":
        from vlp.workloads.data.readers.image_folder import open_image_folder

        return open_image_folder(uri, options.classnames)
    if format == "domainbed":
        from vlp.workloads.data.readers.domainbed import open_domainbed

        return open_domainbed(uri, options.classnames)
    if format == "refcoco":
        from vlp.workloads.data.readers.refcoco import open_refcoco

        return open_refcoco(uri, options.split, options.image_root)
    if format == "vqa":
        from vlp.workloads.data.readers.vqa import open_vqa

        return open_vqa(uri, options.split, options.image_root)
    if format == "video":  # VideoRecords: shards of video files or a WebVid-style table (readers/webvid.py)
        from vlp.workloads.data.readers.webvid import open_with_reader_options

        return open_with_reader_options(uri, options)
    raise StorageError(f"unknown dataset format {format!r} (known: {', '.join(FORMATS)})")


def detect_format(uri: str) -> str:
    from vlp.workloads.data.readers.refcoco import is_refcoco_folder
    from vlp.workloads.data.readers.vqa import is_vqa_folder

    if uri.lower().endswith((".csv", ".tsv")):
        return "csv"
    if uri.lower().endswith((".json", ".p")):
        return "refcoco"
    prefix = uri.rstrip("/") + "/"
    depths = set()
    listing = list(open_storage(uri).list(prefix))
    if any(item.endswith("/nshards.txt") for item in listing):
        return "clip_benchmark"
    if is_refcoco_folder(listing, prefix):
        return "refcoco"
    if is_vqa_folder(listing, prefix):
        return "vqa"
    for item in listing:
        if item.endswith(".tar"):
            from vlp.workloads.data.readers.webvid import shards_hold_videos

            return "video" if shards_hold_videos(item, listing) else "wds"
        if is_image(item):
            depths.add(item[len(prefix):].count("/"))
    if depths == {1}:
        return "folder"
    if depths == {2}:
        return "domainbed"
    if not depths:
        raise StorageError(f"{uri}: no dataset found (expected *.tar shards, a .csv/.tsv table, RefCOCO or VQA annotations, or image folders)")
    raise StorageError(f"{uri}: images at mixed depths; pass the format (folder: root/class/*.jpg, domainbed: root/domain/class/*.jpg)")


__all__ = ["EvalRecord", "EvalSource", "ReaderOptions", "FORMATS", "open_source", "detect_format"]
