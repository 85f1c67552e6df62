"""RefCOCO-style referring expressions (image, expression, target box) as evaluation records, in the two layouts the
field ships them in.

**refer** — lichengunc/refer (refer.py at commit 2fe1dfe; the cleaned RefCOCO, RefCOCO+, RefCOCOg and RefCLEF releases):

    root/instances.json          COCO annotations: images [{id, file_name, height, width}],
                                 annotations [{id, image_id, bbox: [x, y, w, h], category_id}], categories [{id, name}]
    root/refs(<split_by>).p      the refs as released (pickled; read by a loader that builds only plain data)
      or root/refs(<split_by>).json   the same list as JSON
                                 [{ref_id, ann_id, image_id, split, category_id, sentences: [{sent, raw, sent_id, tokens}]}]
    root/images/<file_name>      the images (refer.py looks in images/mscoco/images/train2014: pass that as image_root)

A ref's box is its annotation's `bbox`; each of its sentences (`sent`) is one expression. The URI is the folder (its
refs file, or `refs(unc)` where several lie there, as refer.py's default splitBy) or a refs file itself. `split` picks
refs as refer.py's getRefIds does: `train`/`val` exactly, `test` every test split (testA and testB), `testA` the
splits containing A; `all` takes every ref.

**MDETR** — MDETR's pre-processed `final_refcoco_<split>.json` (also read by GLIP and Grounding DINO): one COCO-style
file, images [{id, file_name, caption, height, width}] one entry per expression (`caption`), annotations
[{image_id, bbox: [x, y, w, h]}] its target box; images in images/ beside the file.

Each image becomes one record whose `refexps` are {"expression", "box": [x0, y0, x1, y1] pixels, "object": the
annotation's id, "category"}. Missing images, boxes outside their image and files without the expected fields are one
line naming the file (and entry) before anything is read.
"""

from __future__ import annotations

import io
import pickle
import re
from typing import Iterator

from vlp.platform.errors import StorageError
from vlp.platform.storage import join, open_storage
from vlp.workloads.data.readers.annotation_files import check_inside, field, image_index, read_json, xywh_box
from vlp.workloads.data.readers.records import EvalRecord, EvalSource, dataset_name

REFS_FILE = re.compile(r"refs\((\w+)\)\.(p|json)$")
DEFAULT_SPLIT_BY = "unc"


def open_refcoco(uri: str, split: str = "test", image_root: str | None = None) -> EvalSource:
    uri = uri.rstrip("/")
    if uri.lower().endswith(".json") and not REFS_FILE.search(uri):
        root, images = uri.rsplit("/", 1)[0] if "/" in uri else ".", _mdetr_images(uri)
        name = dataset_name(uri).removesuffix(".json")
    else:
        refs_uri = uri if REFS_FILE.search(uri) else _refs_file(uri)
        root = refs_uri.rsplit("/", 1)[0]
        images = _refer_images(root, refs_uri, split)
        name = dataset_name(root)
    folder = (image_root or join(root, "images")).rstrip("/")
    found = image_index(folder)
    missing = [file_name for file_name in images if file_name not in found]
    if missing:
        raise StorageError(
            f"{folder}/{missing[0]}: missing ({len(missing)} of the {len(images)} images the expressions refer to are); "
            "put the images there or pass the folder holding them (image_root)"
        )

    def read() -> Iterator[EvalRecord]:
        for file_name, (size, refexps) in images.items():
            image = open_storage(found[file_name]).read_bytes(found[file_name])
            if size is None:  # no size in the annotations: check the boxes against the image itself
                width, height = _image_size(image, found[file_name])
                for refexp in refexps:
                    check_inside(refexp["box"], f"{found[file_name]}: expression {refexp['expression']!r}", width, height)
            yield EvalRecord(key=file_name, image=image, refexps=tuple(refexps))

    return EvalSource(name=name, uri=uri, format="refcoco", classnames=(), read=read)


def _refs_file(root: str) -> str:
    prefix = root + "/"
    found = {REFS_FILE.search(item).group(1): item for item in open_storage(root).list(prefix) if "/" not in item[len(prefix):] and REFS_FILE.search(item)}
    if not found:
        raise StorageError(f"{root}: no refs(<split_by>).p or .json (lichengunc/refer's layout: refs and instances.json in one folder)")
    if len(found) > 1 and DEFAULT_SPLIT_BY not in found:
        raise StorageError(f"{root}: several refs files ({', '.join(sorted(found))}); pass one of them as the dataset URI")
    return found[DEFAULT_SPLIT_BY] if DEFAULT_SPLIT_BY in found else next(iter(found.values()))


class _PlainData(pickle.Unpickler):
    """refer's refs are lists, dicts, strings and numbers: anything that needs a class to build is refused, so a
    pickle cannot run code."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"holds a {module}.{name} object; refs files hold only lists, dicts, strings and numbers")


def _load_refs(uri: str) -> list:
    if uri.endswith(".json"):
        refs = read_json(uri)
    else:
        storage = open_storage(uri)
        if not storage.exists(uri):
            raise StorageError(f"{uri}: missing")
        try:
            refs = _PlainData(io.BytesIO(storage.read_bytes(uri)), encoding="utf-8").load()
        except (pickle.UnpicklingError, EOFError, UnicodeDecodeError, ValueError, IndexError) as err:
            raise StorageError(f"{uri}: not a refer refs pickle ({err})") from None
    if not isinstance(refs, list):
        raise StorageError(f"{uri}: expected a list of refs, found {type(refs).__name__}")
    return refs


def _selected(ref_split: str, split: str) -> bool:
    """refer.py's getRefIds split rule."""
    if split == "all":
        return True
    if split in ("testA", "testB", "testC"):
        return split[-1] in ref_split
    if split == "test":
        return "test" in ref_split
    return ref_split == split


def _refer_images(root: str, refs_uri: str, split: str) -> dict[str, tuple[tuple[float, float] | None, list[dict]]]:
    """file_name -> ((width, height) or None, refexps) for the refs of `split`, images in the refs' order."""
    instances_uri = join(root, "instances.json")
    instances = read_json(instances_uri)
    images = {field(image, "id", f"{instances_uri}: images[{i}]"): image for i, image in enumerate(field(instances, "images", instances_uri, list))}
    annotations = {field(ann, "id", f"{instances_uri}: annotations[{i}]"): ann for i, ann in enumerate(field(instances, "annotations", instances_uri, list))}
    categories = {c.get("id"): c.get("name") for c in instances.get("categories", ()) if isinstance(c, dict)}
    refs = _load_refs(refs_uri)
    splits = sorted({str(ref.get("split")) for ref in refs if isinstance(ref, dict)})
    chosen: dict[str, tuple[tuple[float, float] | None, list[dict]]] = {}
    for i, ref in enumerate(refs):
        where = f"{refs_uri}: ref {ref.get('ref_id', i) if isinstance(ref, dict) else i}"
        if not _selected(str(field(ref, "split", where)), split):
            continue
        ann_id, image_id = field(ref, "ann_id", where), field(ref, "image_id", where)
        if ann_id not in annotations:
            raise StorageError(f"{where}: ann_id {ann_id} is not among {instances_uri}'s annotations")
        if image_id not in images:
            raise StorageError(f"{where}: image_id {image_id} is not among {instances_uri}'s images")
        image, annotation = images[image_id], annotations[ann_id]
        file_name = field(image, "file_name", f"{instances_uri}: image {image_id}", str)
        size = (image["width"], image["height"]) if "width" in image and "height" in image else None
        box = xywh_box(field(annotation, "bbox", f"{instances_uri}: annotation {ann_id}"), f"{instances_uri}: annotation {ann_id} (image {file_name})", *(size or (None, None)))
        sentences = field(ref, "sentences", where, list)
        if not sentences:
            raise StorageError(f"{where}: no sentences")
        entry = chosen.setdefault(file_name, (size, []))
        for j, sentence in enumerate(sentences):
            expression = field(sentence, "sent", f"{where}: sentences[{j}]", str)
            entry[1].append({"expression": expression, "box": box, "object": ann_id, "category": categories.get(ref.get("category_id"))})
    if not chosen:
        raise StorageError(f"{refs_uri}: no refs in split {split!r} (splits there: {', '.join(splits) or 'none'}; 'all' takes every ref)")
    return chosen


def _mdetr_images(uri: str) -> dict[str, tuple[tuple[float, float] | None, list[dict]]]:
    document = read_json(uri)
    boxes: dict = {}
    for i, annotation in enumerate(field(document, "annotations", uri, list)):
        where = f"{uri}: annotations[{i}]"
        boxes.setdefault(field(annotation, "image_id", where), []).append((annotation.get("id", i), field(annotation, "bbox", where)))
    chosen: dict[str, tuple[tuple[float, float] | None, list[dict]]] = {}
    for i, entry in enumerate(field(document, "images", uri, list)):
        where = f"{uri}: images[{i}]"
        entry_id, file_name = field(entry, "id", where), field(entry, "file_name", where, str)
        expression = field(entry, "caption", where, str)
        targets = boxes.get(entry_id, [])
        if len(targets) != 1:
            raise StorageError(f"{where}: {len(targets)} annotations for expression {expression!r}; a referring expression has one target box")
        size = (entry["width"], entry["height"]) if "width" in entry and "height" in entry else None
        (ann_id, bbox), = targets
        box = xywh_box(bbox, f"{where} ({file_name})", *(size or (None, None)))
        chosen.setdefault(file_name, (size, []))[1].append({"expression": expression, "box": box, "object": ann_id, "category": None})
    if not chosen:
        raise StorageError(f"{uri}: no images (expressions) listed")
    return chosen


def _image_size(image: bytes, uri: str) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(io.BytesIO(image)).size
    except (UnidentifiedImageError, OSError) as err:
        raise StorageError(f"{uri}: not a readable image ({err})") from None


def is_refcoco_folder(listing: list[str], prefix: str) -> bool:
    return any(REFS_FILE.search(item) and "/" not in item[len(prefix):] for item in listing) and prefix + "instances.json" in listing


__all__ = ["open_refcoco", "is_refcoco_folder"]
