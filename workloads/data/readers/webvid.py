"""Video–caption datasets for evaluation, as `VideoRecord`s: webdataset shards of video files, or a table of videos.

- Shards (`*.tar`, as vlp's moving-shapes generator and video2dataset write them): each sample's video entry
  (`mp4`, `webm`, ...), its `txt` caption and its `json` (class fields such as `motion` and `shape`). The
  dataset's `manifest.json`, where there is one, gives the class lists (`motions`, `shapes`, `classes`).
- Tables (`.csv`/`.tsv`): the WebVid layout (the released `results_*.csv`: `videoid,contentUrl,duration,page_dir,name`,
  the videos downloaded as `videos/<page_dir>/<videoid>.mp4`, as WebVid's `download.py` stores them) or a plain
  one with `path` and `caption` columns. Paths are relative to `video_root` (default: the table's folder);
  WebVid rows are looked up as `videos/<page_dir>/<videoid>.mp4`, `<page_dir>/<videoid>.mp4` or `<videoid>.mp4`,
  whichever layout the first rows show. Listed videos that were never downloaded (WebVid's always has some) are
  skipped, and counted in one warning per pass.

Local paths and `s3://` URIs work alike (everything is read through `vlp.platform.storage`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from vlp.platform.errors import StorageError
from vlp.platform.storage import is_s3, join, open_storage
from vlp.workloads.data.readers.csv_table import read_rows
from vlp.workloads.data.readers.records import EvalSource, dataset_name
from vlp.workloads.data.shards import iter_shard, list_shards
from vlp.workloads.data.video_codec import VIDEO_EXTENSIONS

log = logging.getLogger(__name__)

WEBVID_COLUMNS = ("videoid", "page_dir", "name")
PATH_COLUMNS = ("path", "video", "filepath", "video_path")
CAPTION_COLUMNS = ("caption", "name", "title", "text")
WEBVID_LAYOUTS = ("videos/{page_dir}/{videoid}.mp4", "{page_dir}/{videoid}.mp4", "{videoid}.mp4")
_LAYOUT_PROBE_ROWS = 20


@dataclass(frozen=True)
class VideoRecord:
    """One clip with what its format says about it (shards: everything in the sample's json; tables: their columns)."""

    key: str
    """Unique within the dataset (a shard key, or the table's path or WebVid `videoid`)."""
    video: bytes
    """The encoded video file (MP4, WebM, ...): `vlp.workloads.data.video_codec.decode_video` reads it."""
    caption: str | None = None
    """The clip's caption."""
    label: str | None = None
    """The class under the reader's label field (`motion` by default) or label column."""
    motion: str | None = None
    """Motion class (`json["motion"]`: moving left, rotating, ...), where the dataset has one."""
    shape: str | None = None
    """Appearance class (`json["shape"]`), where the dataset has one."""
    domain: str | None = None
    """Render style (`json["style"]`) or the table's domain column."""
    extension: str = "mp4"
    """The video entry's extension (the container it is in)."""
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    """Everything else the sample's json holds (colour, size, frames, fps, per-frame boxes) or the table row."""

    @property
    def all_captions(self) -> tuple[str, ...]:
        return (self.caption,) if self.caption else ()


@dataclass(frozen=True)
class VideoSource(EvalSource):
    """A video dataset opened for reading: `read()` yields `VideoRecord`s; `classnames` are the label field's classes.
    `motions` and `shapes` list the motion and appearance classes apart, for zero-shot classification of each."""

    motions: tuple[str, ...] = ()
    shapes: tuple[str, ...] = ()


def open_video_source(uri: str, label_field: str = "motion", *, video_column: str | None = None,
                      caption_column: str | None = None, label_column: str | None = None,
                      domain_column: str | None = None, separator: str | None = None, video_root: str | None = None,
                      classnames: tuple[str, ...] = ()) -> VideoSource:
    """A `.csv`/`.tsv` table or a folder of shards. Table columns default to what the table has: WebVid's
    (`videoid`, `page_dir`, `name`) or a path column (`path`, `video`, `filepath`) and a caption column
    (`caption`, `name`, `title`)."""
    if uri.lower().endswith((".csv", ".tsv")):
        return open_video_table(uri, video_column, caption_column, label_column, domain_column, separator, video_root, classnames)
    return open_video_shards(uri, label_field, classnames)


def open_with_reader_options(uri: str, options) -> VideoSource:
    """`open_source(uri, "video", options)`: the image formats' `ReaderOptions`, read for videos (the image column is
    the video column, `image_root` the video root; their defaults leave the columns to be found in the table)."""
    defaults = type(options)()
    return open_video_source(
        uri, options.label_field,
        video_column=None if options.image_column == defaults.image_column else options.image_column,
        caption_column=None if options.caption_column == defaults.caption_column else options.caption_column,
        label_column=options.label_column, domain_column=options.domain_column, separator=options.separator,
        video_root=options.image_root, classnames=options.classnames,
    )


def shards_hold_videos(shard_uri: str, listing: list[str]) -> bool:
    """Do a dataset's shards hold videos? Its manifest says so (`vlp-shapes-video/…`); without one, the first sample
    of `shard_uri` is looked at (video2dataset's shards). `listing` is the dataset folder's contents."""
    import tarfile

    manifest_uri = shard_uri.rsplit("/", 1)[0] + "/manifest.json"
    if manifest_uri in listing:
        return str(json.loads(open_storage(manifest_uri).read_bytes(manifest_uri)).get("format", "")).startswith("vlp-shapes-video/")
    with open_storage(shard_uri).open_read(shard_uri) as handle, tarfile.open(fileobj=handle, mode="r|") as archive:
        key = None
        for member in archive:
            sample_key, _, extension = member.name.rpartition("/")[2].partition(".")
            if key is not None and sample_key != key:
                return False
            key = sample_key
            if extension.lower() in VIDEO_EXTENSIONS:
                return True
    return False


# ---------------------------------------------------------------------------------------------
# Shards.


def open_video_shards(uri: str, label_field: str = "motion", classnames: tuple[str, ...] = ()) -> VideoSource:
    shards = list_shards(uri)
    manifest_uri = join(uri, "manifest.json")
    storage = open_storage(manifest_uri)
    manifest = json.loads(storage.read_bytes(manifest_uri)) if storage.exists(manifest_uri) else {}
    classes = manifest.get("classes", {})
    motions = tuple(manifest.get("motions", classes.get("motion", ())))
    shapes = tuple(manifest.get("shapes", classes.get("shape", ())))
    classnames = classnames or tuple(classes.get(label_field, ()))

    def read() -> Iterator[VideoRecord]:
        for shard in shards:
            for sample in iter_shard(shard):
                yield _shard_record(sample, label_field)

    if not classnames:
        # No manifest: the classes are the label values that occur, in sorted order.
        classnames = tuple(sorted({record.label for record in read() if record.label is not None}))
    return VideoSource(
        name=dataset_name(uri), uri=uri, format="video", classnames=classnames, read=read,
        domains=tuple(manifest.get("domains", ())), motions=motions, shapes=shapes,
    )


def _shard_record(sample: dict, label_field: str) -> VideoRecord:
    extension = next((ext for ext in VIDEO_EXTENSIONS if ext in sample), None)
    if extension is None:
        raise StorageError(
            f"{sample.get('__url__')}: sample {sample.get('__key__')} has no video (expected one of {', '.join(VIDEO_EXTENSIONS)})"
        )
    meta = json.loads(sample["json"]) if "json" in sample else {}
    caption = sample.get("txt")
    return VideoRecord(
        key=sample["__key__"],
        video=sample[extension],
        caption=caption.decode("utf-8") if isinstance(caption, bytes) else caption,
        label=_text(meta.get(label_field)),
        motion=_text(meta.get("motion")),
        shape=_text(meta.get("shape")),
        domain=_text(meta.get("style")),
        extension=extension,
        meta=meta,
    )


def _text(value) -> str | None:
    return None if value is None else str(value)


# ---------------------------------------------------------------------------------------------
# Tables.


def open_video_table(uri: str, video_column: str | None = None, caption_column: str | None = None,
                     label_column: str | None = None, domain_column: str | None = None, separator: str | None = None,
                     video_root: str | None = None, classnames: tuple[str, ...] = ()) -> VideoSource:
    rows = read_rows(uri, separator)
    columns = list(rows[0]) if rows else []
    webvid = video_column is None and all(column in columns for column in WEBVID_COLUMNS)
    video_column = video_column or ("videoid" if webvid else next((c for c in PATH_COLUMNS if c in columns), None))
    caption_column = caption_column or next((c for c in CAPTION_COLUMNS if c in columns), None)
    for role, column in (("video", video_column), ("caption", caption_column), ("label", label_column), ("domain", domain_column)):
        if column is None and role in ("video", "caption"):
            wanted = {"video": "WebVid's videoid,page_dir,name or a path column (" + ", ".join(PATH_COLUMNS) + ")",
                      "caption": "one of " + ", ".join(CAPTION_COLUMNS)}[role]
            raise StorageError(f"{uri}: no {role} column: need {wanted} (columns: {', '.join(columns) or 'none'})")
        if column is not None and column not in columns:
            raise StorageError(f"{uri}: no {role} column {column!r} (columns: {', '.join(columns) or 'none'})")
    root = (video_root or (uri.rsplit("/", 1)[0] if "/" in uri else ".")).rstrip("/")
    locate = _webvid_locator(uri, root, rows) if webvid else _path_locator(root, video_column)

    def read() -> Iterator[VideoRecord]:
        missing: list[str] = []
        for row in rows:
            video_uri = locate(row)
            try:
                video = open_storage(video_uri).read_bytes(video_uri)
            except StorageError:
                missing.append(video_uri)
                continue
            yield VideoRecord(
                key=row[video_column],
                video=video,
                caption=row[caption_column],
                label=row[label_column] if label_column else None,
                domain=row[domain_column] if domain_column else None,
                extension=video_uri.rsplit(".", 1)[-1].lower() if "." in video_uri.rsplit("/", 1)[-1] else "mp4",
                meta=dict(row),
            )
        if missing:
            log.warning("%s: %d of %d listed videos are missing and were skipped (first: %s)", uri, len(missing), len(rows), missing[0])
        if len(missing) == len(rows) and rows:
            raise StorageError(f"{uri}: none of the {len(rows)} listed videos exists (first looked for: {missing[0]}); set the video root")

    if not classnames and label_column:
        classnames = tuple(sorted({row[label_column] for row in rows}))
    return VideoSource(name=dataset_name(uri), uri=uri, format="video", classnames=classnames, read=read)


def _path_locator(root: str, column: str) -> Callable[[dict], str]:
    def locate(row: dict) -> str:
        path = row[column]
        return path if is_s3(path) or path.startswith("/") else join(root, path)

    return locate


def _webvid_locator(uri: str, root: str, rows: list[dict]) -> Callable[[dict], str]:
    """The layout (see WEBVID_LAYOUTS) in which the first rows' videos exist."""
    for row in rows[:_LAYOUT_PROBE_ROWS]:
        for layout in WEBVID_LAYOUTS:
            candidate = join(root, layout.format(**row))
            if open_storage(candidate).exists(candidate):
                return lambda row, layout=layout: join(root, layout.format(**row))
    tried = ", ".join(join(root, layout.format(**rows[0])) for layout in WEBVID_LAYOUTS) if rows else root
    raise StorageError(f"{uri}: none of the first {min(len(rows), _LAYOUT_PROBE_ROWS)} WebVid videos found (tried {tried}); "
                       "point the video root at the folder the videos were downloaded to")
