"""Webdataset shards (`*.tar`, as img2dataset and vlp's generators write them) as evaluation records.

Labels come from the sample's `json` (`label_field`, `domain_field`, `objects` for masks) or, in
CLIP_benchmark's layout, from a `cls` entry indexing `classnames.txt` beside the shards.
"""

from __future__ import annotations

import json
from typing import Iterator

from vlp.platform.errors import StorageError
from vlp.platform.storage import join, open_storage
from vlp.workloads.data.readers.records import EvalRecord, EvalSource, dataset_name
from vlp.workloads.data.shards import iter_shard, list_shards

IMAGE_KEYS = ("png", "jpg", "jpeg", "webp")


def open_shards(uri: str, label_field: str = "shape", domain_field: str = "style", classnames: tuple[str, ...] = ()) -> EvalSource:
    shards = list_shards(uri)
    manifest = _read_json(join(uri, "manifest.json"))
    listed = _read_lines(join(uri, "classnames.txt"))
    domains = _manifest_domains(manifest, domain_field) if manifest else ()
    if not classnames:
        classnames = tuple(manifest.get("classes", {}).get(label_field, ())) if manifest else ()
    classnames = classnames or listed

    def read() -> Iterator[EvalRecord]:
        for shard in shards:
            for sample in iter_shard(shard):
                yield _record(sample, label_field, domain_field, listed)

    if not classnames:
        # No manifest and no class list: the classes are the label values that occur, in sorted order.
        classnames = tuple(sorted({record.label for record in read() if record.label is not None}))
    answers = tuple(manifest.get("answers", ())) if manifest else ()
    return EvalSource(name=dataset_name(uri), uri=uri, format="wds", classnames=classnames, read=read, domains=domains, answers=answers)


def _manifest_domains(manifest: dict, domain_field: str) -> tuple[str, ...]:
    """A shapes manifest lists its render styles as `domains`; another field's values are among its `classes`."""
    if domain_field == "style":
        return tuple(manifest.get("domains", ()))
    return tuple(manifest.get("classes", {}).get(domain_field, ()))


def _record(sample: dict, label_field: str, domain_field: str, listed: tuple[str, ...]) -> EvalRecord:
    image_key = next((key for key in IMAGE_KEYS if key in sample), None)
    if image_key is None:
        raise StorageError(f"{sample.get('__url__')}: sample {sample.get('__key__')} has no image (expected one of {', '.join(IMAGE_KEYS)})")
    meta = json.loads(sample["json"]) if "json" in sample else {}
    label = meta.get(label_field)
    if label is None and "cls" in sample and listed:
        label = listed[int(sample["cls"].decode().strip())]
    caption = sample.get("txt")
    return EvalRecord(
        key=sample["__key__"],
        image=sample[image_key],
        caption=caption.decode("utf-8") if isinstance(caption, bytes) else caption,
        label=None if label is None else str(label),
        domain=None if meta.get(domain_field) is None else str(meta[domain_field]),
        mask=sample.get("mask.png"),
        object_labels=tuple(str(obj.get(label_field)) for obj in meta.get("objects", ())),
        questions=tuple(meta.get("questions", ())),
        refexps=tuple(meta.get("refexps", ())),
    )


def _read_json(uri: str) -> dict | None:
    storage = open_storage(uri)
    return json.loads(storage.read_bytes(uri)) if storage.exists(uri) else None


def _read_lines(uri: str) -> tuple[str, ...]:
    storage = open_storage(uri)
    if not storage.exists(uri):
        return ()
    return tuple(line.strip() for line in storage.read_bytes(uri).decode("utf-8").splitlines() if line.strip())
