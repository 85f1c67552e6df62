"""RefCOCO-style and VQA-style readers on files written in the field's own layouts, with real JPEGs.

Layouts followed: lichengunc/refer (refer.py at commit 2fe1dfe; refs(unc).p pickled with protocol 2 as the 2016
releases are, instances.json in COCO's format, boxes [x, y, w, h]); MDETR's final_refcoco_<split>.json; the VQA v2
release (v2_OpenEnded_mscoco_val2014_questions.json, v2_mscoco_val2014_annotations.json, images
val2014/COCO_val2014_<id:012d>.jpg).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlp.platform.errors import StorageError
from vlp.workloads.data.readers import ReaderOptions, detect_format, open_source


def _jpeg(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(width * height).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)


def _refer(root: Path, refs_format: str = "p") -> Path:
    """A RefCOCO folder as lichengunc/refer lays it out (two images, three referred objects, four sentences)."""
    instances = {
        "images": [
            {"id": 9, "file_name": "COCO_train2014_000000000009.jpg", "width": 64, "height": 48},
            {"id": 25, "file_name": "COCO_train2014_000000000025.jpg", "width": 40, "height": 40},
        ],
        "annotations": [
            {"id": 101, "image_id": 9, "bbox": [2.5, 3.0, 20.0, 10.0], "category_id": 1, "area": 200.0, "iscrowd": 0},
            {"id": 102, "image_id": 9, "bbox": [30.0, 20.0, 34.0, 28.0], "category_id": 2, "area": 952.0, "iscrowd": 0},
            {"id": 103, "image_id": 25, "bbox": [0.0, 0.0, 40.0, 40.0], "category_id": 1, "area": 1600.0, "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}, {"id": 2, "name": "dog", "supercategory": "animal"}],
    }
    refs = [
        {"ref_id": 0, "ann_id": 101, "image_id": 9, "split": "testA", "category_id": 1, "file_name": "COCO_train2014_000000000009_101.jpg",
         "sent_ids": [0, 1], "sentences": [{"tokens": ["man", "left"], "raw": "Man left", "sent_id": 0, "sent": "man left"},
                                           {"tokens": ["guy"], "raw": "guy", "sent_id": 1, "sent": "guy"}]},
        {"ref_id": 1, "ann_id": 102, "image_id": 9, "split": "testB", "category_id": 2, "file_name": "COCO_train2014_000000000009_102.jpg",
         "sent_ids": [2], "sentences": [{"tokens": ["dog"], "raw": "dog", "sent_id": 2, "sent": "dog"}]},
        {"ref_id": 2, "ann_id": 103, "image_id": 25, "split": "train", "category_id": 1, "file_name": "COCO_train2014_000000000025_103.jpg",
         "sent_ids": [3], "sentences": [{"tokens": ["everyone"], "raw": "everyone", "sent_id": 3, "sent": "everyone"}]},
    ]
    root.mkdir(parents=True, exist_ok=True)
    (root / "instances.json").write_text(json.dumps(instances))
    if refs_format == "p":
        (root / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    else:
        (root / "refs(unc).json").write_text(json.dumps(refs))
    _jpeg(root / "images" / "COCO_train2014_000000000009.jpg", 64, 48)
    _jpeg(root / "images" / "COCO_train2014_000000000025.jpg", 40, 40)
    return root


def _mdetr(root: Path) -> Path:
    document = {
        "images": [
            {"id": 0, "file_name": "COCO_train2014_000000000009.jpg", "caption": "man left", "height": 48, "width": 64, "original_id": 9},
            {"id": 1, "file_name": "COCO_train2014_000000000009.jpg", "caption": "dog", "height": 48, "width": 64, "original_id": 9},
        ],
        "annotations": [
            {"id": 0, "image_id": 0, "bbox": [2.5, 3.0, 20.0, 10.0], "category_id": 1, "area": 200.0, "iscrowd": 0},
            {"id": 1, "image_id": 1, "bbox": [30.0, 20.0, 34.0, 28.0], "category_id": 2, "area": 952.0, "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}],
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "final_refcoco_testA.json").write_text(json.dumps(document))
    _jpeg(root / "images" / "COCO_train2014_000000000009.jpg", 64, 48)
    return root / "final_refcoco_testA.json"


def _vqa(root: Path) -> Path:
    questions = {
        "info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "data_subtype": "val2014", "license": {},
        "questions": [
            {"image_id": 42, "question": "What color is the umbrella?", "question_id": 420},
            {"image_id": 42, "question": "Is it raining?", "question_id": 421},
            {"image_id": 73, "question": "How many dogs are there?", "question_id": 730},
        ],
    }

    def answers(*words):
        return [{"answer": word, "answer_confidence": "yes", "answer_id": i + 1} for i, word in enumerate(words)]

    annotations = {
        "info": {}, "data_type": "mscoco", "data_subtype": "val2014", "license": {},
        "annotations": [
            {"question_id": 420, "image_id": 42, "question_type": "what color is the", "answer_type": "other",
             "multiple_choice_answer": "red", "answers": answers(*["red"] * 8, "pink", "red and white")},
            {"question_id": 421, "image_id": 42, "question_type": "is it", "answer_type": "yes/no",
             "multiple_choice_answer": "yes", "answers": answers(*["yes"] * 10)},
            {"question_id": 730, "image_id": 73, "question_type": "how many", "answer_type": "number",
             "multiple_choice_answer": "2", "answers": answers(*["2"] * 9, "3")},
        ],
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "v2_OpenEnded_mscoco_val2014_questions.json").write_text(json.dumps(questions))
    (root / "v2_mscoco_val2014_annotations.json").write_text(json.dumps(annotations))
    _jpeg(root / "val2014" / "COCO_val2014_000000000042.jpg", 50, 30)
    _jpeg(root / "val2014" / "COCO_val2014_000000000073.jpg", 30, 50)
    return root


# ---------------------------------------------------------------------------------------------
# RefCOCO


@pytest.mark.parametrize("refs_format", ["p", "json"])
def test_refer_layout_reads_boxes_and_sentences_by_split(tmp_path, refs_format):
    root = _refer(tmp_path / "refcoco", refs_format)
    assert detect_format(str(root)) == "refcoco"
    source = open_source(str(root))  # split "test": testA and testB, as refer.py's getRefIds("test")
    assert (source.format, source.name) == ("refcoco", "refcoco")
    records = list(source.read())
    assert [r.key for r in records] == ["COCO_train2014_000000000009.jpg"]
    assert Image.open(io.BytesIO(records[0].image)).size == (64, 48)
    assert [(e["expression"], e["box"], e["object"], e["category"]) for e in records[0].refexps] == [
        ("man left", [2.5, 3.0, 22.5, 13.0], 101, "person"),
        ("guy", [2.5, 3.0, 22.5, 13.0], 101, "person"),
        ("dog", [30.0, 20.0, 64.0, 48.0], 102, "dog"),
    ]
    assert [e["expression"] for r in open_source(str(root), options=ReaderOptions(split="testB")).read() for e in r.refexps] == ["dog"]
    assert [r.key for r in open_source(str(root), options=ReaderOptions(split="train")).read()] == ["COCO_train2014_000000000025.jpg"]
    assert len(list(open_source(str(root), options=ReaderOptions(split="all")).read())) == 2


def test_refs_file_as_the_uri_and_images_elsewhere(tmp_path):
    root = _refer(tmp_path / "refcoco")
    (root / "images").rename(tmp_path / "train2014")
    (root / "refs(google).p").write_bytes((root / "refs(unc).p").read_bytes())
    options = ReaderOptions(image_root=str(tmp_path / "train2014"), split="all")
    records = list(open_source(str(root / "refs(google).p"), options=options).read())
    assert len(records) == 2 and open_source(str(root / "refs(google).p"), options=options).format == "refcoco"
    # Two refs files in one folder: refer's default splitBy (unc) is taken.
    assert len(list(open_source(str(root), options=options).read())) == 2


def test_mdetr_layout(tmp_path):
    uri = _mdetr(tmp_path / "mdetr")
    assert detect_format(str(uri)) == "refcoco"
    source = open_source(str(uri))
    assert source.name == "final_refcoco_testA"
    (record,) = list(source.read())
    assert [(e["expression"], e["box"]) for e in record.refexps] == [("man left", [2.5, 3.0, 22.5, 13.0]), ("dog", [30.0, 20.0, 64.0, 48.0])]


class _Shell:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_refs_pickle_that_would_run_code_is_refused(tmp_path):
    root = _refer(tmp_path / "refcoco")
    (root / "refs(unc).p").write_bytes(pickle.dumps([_Shell()], protocol=2))
    with pytest.raises(StorageError, match=r"refs\(unc\)\.p: not a refer refs pickle \(holds a .*system object"):
        open_source(str(root))
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def _edit_json(path: Path, edit) -> None:
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda root: (root / "images" / "COCO_train2014_000000000009.jpg").unlink(), r"images/COCO_train2014_000000000009.jpg: missing \(1 of the 1 images"),
        (lambda root: _edit_json(root / "instances.json", lambda d: d["annotations"][1].update(bbox=[30.0, 20.0, 40.0, 28.0])),
         r"instances.json: annotation 102 \(image COCO_train2014_000000000009.jpg\): box \[30.0, 20.0, 70.0, 48.0\] lies outside the 64x48 image"),
        (lambda root: _edit_json(root / "instances.json", lambda d: d["annotations"][0].update(bbox=[1, 2, 0, 5])), r"annotation 101.*is empty"),
        (lambda root: _edit_json(root / "instances.json", lambda d: d.pop("annotations")), r"instances.json: no 'annotations' field"),
        (lambda root: (root / "refs(unc).p").write_bytes(pickle.dumps([{"ref_id": 0, "ann_id": 101, "image_id": 9, "split": "testA"}])),
         r"refs\(unc\)\.p: ref 0: no 'sentences' field"),
        (lambda root: (root / "refs(unc).p").write_bytes(pickle.dumps([{"ref_id": 0, "ann_id": 999, "image_id": 9, "split": "testA", "sentences": []}])),
         r"ref 0: ann_id 999 is not among"),
        (lambda root: (root / "refs(unc).p").write_bytes(b"not a pickle"), r"refs\(unc\)\.p: not a refer refs pickle"),
        (lambda root: (root / "instances.json").write_text("{"), r"instances.json: not JSON"),
    ],
)
def test_bad_refcoco_data_is_one_line_naming_the_file(tmp_path, break_it, message):
    root = _refer(tmp_path / "refcoco")
    break_it(root)
    with pytest.raises(StorageError, match=message) as raised:
        open_source(str(root))
    assert "\n" not in str(raised.value)


def test_a_split_without_refs_names_the_splits_there(tmp_path):
    root = _refer(tmp_path / "refcoco")
    with pytest.raises(StorageError, match=r"no refs in split 'val' \(splits there: testA, testB, train; 'all' takes every ref\)"):
        open_source(str(root), options=ReaderOptions(split="val"))


def test_mdetr_without_sizes_checks_boxes_against_the_image(tmp_path):
    uri = _mdetr(tmp_path / "mdetr")
    _edit_json(uri, lambda d: [image.pop("width") for image in d["images"]] and d["annotations"][1].update(bbox=[30.0, 20.0, 40.0, 28.0]))
    source = open_source(str(uri))
    with pytest.raises(StorageError, match=r"COCO_train2014_000000000009.jpg: expression 'dog': box .* lies outside the 64x48 image"):
        list(source.read())


# ---------------------------------------------------------------------------------------------
# VQA


def test_vqa_layout_reads_questions_answers_and_images(tmp_path):
    root = _vqa(tmp_path / "vqa")
    assert detect_format(str(root)) == "vqa"
    source = open_source(str(root))
    assert (source.format, source.name, source.answers) == ("vqa", "vqa", ("2", "red", "yes"))
    records = list(source.read())
    assert [r.key for r in records] == ["COCO_val2014_000000000042.jpg", "COCO_val2014_000000000073.jpg"]
    assert Image.open(io.BytesIO(records[0].image)).size == (50, 30)
    first = records[0].questions[0]
    assert (first["question"], first["answer"], first["kind"], first["question_id"]) == ("What color is the umbrella?", "red", "other", 420)
    assert first["answers"] == ["red"] * 8 + ["pink", "red and white"]
    assert [(q["question"], q["answer"], q["kind"]) for q in records[1].questions] == [("How many dogs are there?", "2", "number")]


def test_vqa_images_folder_and_plain_ids(tmp_path):
    root = _vqa(tmp_path / "vqa")
    (root / "val2014").rename(root / "images")
    (root / "images" / "COCO_val2014_000000000073.jpg").rename(root / "images" / "73.jpg")
    assert [r.key for r in open_source(str(root)).read()] == ["COCO_val2014_000000000042.jpg", "73.jpg"]


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda root: (root / "val2014" / "COCO_val2014_000000000073.jpg").unlink(), r"val2014: no image for image_id 73 \(1 of 2 missing"),
        (lambda root: _edit_json(root / "v2_mscoco_val2014_annotations.json", lambda d: d["annotations"].pop(2)),
         r"v2_mscoco_val2014_annotations.json: no annotation for question_id 730"),
        (lambda root: _edit_json(root / "v2_OpenEnded_mscoco_val2014_questions.json", lambda d: d.pop("questions")),
         r"v2_OpenEnded_mscoco_val2014_questions.json: no 'questions' field"),
        (lambda root: _edit_json(root / "v2_mscoco_val2014_annotations.json", lambda d: d["annotations"][0].pop("multiple_choice_answer")),
         r"v2_mscoco_val2014_annotations.json: annotations\[0\]: no 'multiple_choice_answer' field"),
        (lambda root: (root / "v2_mscoco_val2014_annotations.json").unlink(), r"expected one \*annotations.json to go with v2_OpenEnded_mscoco_val2014_questions.json, found 0"),
    ],
)
def test_bad_vqa_data_is_one_line_naming_the_file(tmp_path, break_it, message):
    root = _vqa(tmp_path / "vqa")
    break_it(root)
    with pytest.raises(StorageError, match=message) as raised:
        open_source(str(root), "vqa")
    assert "\n" not in str(raised.value)


def test_several_vqa_splits_in_one_folder_are_told_apart_by_the_split(tmp_path):
    root = _vqa(tmp_path / "vqa")
    for name in ("v2_OpenEnded_mscoco_val2014_questions.json", "v2_mscoco_val2014_annotations.json"):
        (root / name.replace("val2014", "train2014")).write_text((root / name).read_text().replace('"image_id": 73', '"image_id": 42'))
    assert len(list(open_source(str(root), options=ReaderOptions(split="val2014")).read())) == 2
    assert len(list(open_source(str(root), options=ReaderOptions(split="train2014")).read())) == 1
    with pytest.raises(StorageError, match="pick one with the split"):
        open_source(str(root))


def test_the_cli_refuses_bad_refcoco_data_with_one_line_and_exit_2(tmp_path):
    from services import VLP

    root = _refer(tmp_path / "refcoco")
    (root / "images" / "COCO_train2014_000000000009.jpg").unlink()
    result = subprocess.run([VLP, "eval", "shapes-rn-tiny", str(root), "--no-track"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "COCO_train2014_000000000009.jpg: missing" in result.stderr
