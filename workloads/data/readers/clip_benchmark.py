"""CLIP_benchmark's webdataset layout, read as its `build_wds_dataset` reads it (CLIP_benchmark 1.6):

    root/
        classnames.txt                          one class name per line, in `.cls` order (classification)
        zeroshot_classification_templates.txt   one template per line, `{c}` for the class (optional)
        dataset_type.txt                        `retrieval`, `multilabel`; missing means classification
        test/nshards.txt                        the number of shards, which are test/0.tar … test/{n-1}.tar
        train/…

A sample's image is its first of `.webp`, `.png`, `.jpg`, `.jpeg`; a classification sample's label is its
`.cls` (an index into classnames.txt); a retrieval sample's `.txt` holds its captions, one per line. The URI
may be the root (the split comes from the options) or a split folder itself (`root/train`), so the linear
probe's training split can be named directly.
"""

from __future__ import annotations

from typing import Iterator

from vlp.platform.errors import StorageError
from vlp.platform.storage import join, open_storage
from vlp.workloads.data.readers.records import EvalRecord, EvalSource
from vlp.workloads.data.shards import iter_shard

IMAGE_KEYS = ("webp", "png", "jpg", "jpeg")
DATASET_TYPES = ("classification", "retrieval")


def open_clip_benchmark(uri: str, split: str = "test", classnames: tuple[str, ...] = ()) -> EvalSource:
    root, split_uri = uri.rstrip("/"), join(uri, split)
    if open_storage(uri).exists(join(uri, "nshards.txt")):
        root, split_uri = uri.rstrip("/").rsplit("/", 1)[0], uri.rstrip("/")
    shards = _shard_uris(split_uri)
    dataset_type = (_read_text(join(root, "dataset_type.txt")) or "classification").strip().lower()
    if dataset_type not in DATASET_TYPES:
        raise StorageError(
            f"{join(root, 'dataset_type.txt')}: dataset type {dataset_type!r} is not supported "
            f"(vlp evaluates {' and '.join(DATASET_TYPES)} datasets)"
        )
    retrieval = dataset_type == "retrieval"
    templates: tuple[str, ...] = ()
    if not retrieval:
        listed = _read_text(join(root, "classnames.txt"))
        if listed is None and not classnames:
            raise StorageError(
                f"{join(root, 'classnames.txt')}: missing; a CLIP_benchmark classification dataset lists its class "
                "names there, one per line in label order (write it, or pass the class names)"
            )
        # Every line counts, as in CLIP_benchmark: a blank line still holds a label's place.
        classnames = classnames or tuple(line.strip() for line in (listed or "").splitlines())
        templates = tuple(line.strip() for line in (_read_text(join(root, "zeroshot_classification_templates.txt")) or "").splitlines() if line.strip())

    def read() -> Iterator[EvalRecord]:
        for shard in shards:
            for sample in iter_shard(shard):
                yield _record(sample, classnames, retrieval)

    return EvalSource(name=dataset_name(root), uri=uri, format="clip_benchmark", classnames=classnames if not retrieval else (), read=read, templates=templates)


def dataset_name(root: str) -> str:
    """How CLIP_benchmark names a webdataset: `wds/` and the folder's name, without the `wds_` its published
    copies carry (`…/wds_vtab-cifar10` -> `wds/vtab-cifar10`)."""
    folder = root.rstrip("/").rsplit("/", 1)[-1]
    return "wds/" + folder.removeprefix("wds_")


def _shard_uris(split_uri: str) -> list[str]:
    count_uri = join(split_uri, "nshards.txt")
    text = _read_text(count_uri)
    if text is None:
        raise StorageError(f"{count_uri}: missing; CLIP_benchmark's layout counts a split's shards there (is the split right?)")
    try:
        count = int(text.strip())
    except ValueError:
        raise StorageError(f"{count_uri}: expected the number of shards, found {text.strip()[:40]!r}") from None
    shards = [join(split_uri, f"{index}.tar") for index in range(count)]
    storage = open_storage(split_uri)
    missing = next((shard for shard in shards if not storage.exists(shard)), None)
    if count < 1 or missing:
        raise StorageError(f"{missing or count_uri}: missing; {count_uri} says the split has {count} shards, 0.tar … {count - 1}.tar")
    return shards


def _record(sample: dict, classnames: tuple[str, ...], retrieval: bool) -> EvalRecord:
    image_key = next((key for key in IMAGE_KEYS if key in sample), None)
    where = f"{sample.get('__url__')}: sample {sample.get('__key__')}"
    if image_key is None:
        raise StorageError(f"{where} has no image (expected one of {', '.join('.' + key for key in IMAGE_KEYS)})")
    if retrieval:
        if "txt" not in sample:
            raise StorageError(f"{where} has no .txt captions (dataset_type.txt says retrieval)")
        captions = tuple(sample["txt"].decode("utf-8").splitlines())
        return EvalRecord(key=sample["__key__"], image=sample[image_key], caption=captions[0] if captions else None, captions=captions)
    if "cls" not in sample:
        raise StorageError(f"{where} has no .cls label (a classification dataset; set dataset_type.txt to retrieval for captions)")
    try:
        index = int(sample["cls"].decode().strip())
        if index < 0:
            raise IndexError(index)
        label = classnames[index]
    except (ValueError, IndexError):
        raise StorageError(f"{where}: label {sample['cls'][:20]!r} is not an index into the {len(classnames)} class names") from None
    return EvalRecord(key=sample["__key__"], image=sample[image_key], label=label, label_index=index)


def _read_text(uri: str) -> str | None:
    storage = open_storage(uri)
    return storage.read_bytes(uri).decode("utf-8") if storage.exists(uri) else None
