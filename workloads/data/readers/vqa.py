"""VQA-style question answering (VQA v2 release, visualqa.org, 2017; v1 names its files the same way without `v2_`)
as evaluation records:

    root/v2_OpenEnded_mscoco_<subtype>_questions.json   {"data_subtype", "questions": [{image_id, question, question_id}]}
    root/v2_mscoco_<subtype>_annotations.json           {"annotations": [{question_id, image_id, multiple_choice_answer,
                                                          answers: [{answer, answer_confidence, answer_id}] (ten),
                                                          answer_type, question_type}]}
    root/<subtype>/COCO_<subtype>_<image_id:012d>.jpg   the images (or root/images/, or ReaderOptions.image_root)

Any `*questions.json` with its `*annotations.json` works (several pairs in one folder: the one whose name holds the
split). An image is found by the number its file name ends with (`COCO_val2014_000000000042.jpg`, `42.png`).
Each image becomes one record whose `questions` are {"question", "answer": the multiple-choice answer, "answers":
every annotator's answer, "kind": the answer type (yes/no, number, other), "question_id"}; the source's `answers` is
the sorted set of multiple-choice answers. Missing images, questions without annotations and files without the
expected fields are one line naming the file (and question) before anything is read.
"""

from __future__ import annotations

import re
from typing import Iterator

from vlp.platform.errors import StorageError
from vlp.platform.storage import join, open_storage
from vlp.workloads.data.readers.annotation_files import field, image_index, read_json
from vlp.workloads.data.readers.records import EvalRecord, EvalSource, dataset_name

TRAILING_NUMBER = re.compile(r"(\d+)\.\w+$")


def open_vqa(uri: str, split: str = "test", image_root: str | None = None) -> EvalSource:
    root = uri.rstrip("/")
    questions_uri, annotations_uri = _pair(root, split)
    questions_doc, annotations_doc = read_json(questions_uri), read_json(annotations_uri)
    answers_by_question = {}
    for i, annotation in enumerate(field(annotations_doc, "annotations", annotations_uri, list)):
        where = f"{annotations_uri}: annotations[{i}]"
        answers = [field(a, "answer", f"{where}.answers", str) for a in field(annotation, "answers", where, list)]
        answers_by_question[field(annotation, "question_id", where)] = {
            "answer": field(annotation, "multiple_choice_answer", where, str),
            "answers": answers,
            "kind": annotation.get("answer_type"),
        }
    by_image: dict = {}
    for i, question in enumerate(field(questions_doc, "questions", questions_uri, list)):
        where = f"{questions_uri}: questions[{i}]"
        question_id = field(question, "question_id", where)
        if question_id not in answers_by_question:
            raise StorageError(f"{annotations_uri}: no annotation for question_id {question_id} ({questions_uri}); VQA evaluation needs the answers")
        text = field(question, "question", where, str)
        by_image.setdefault(field(question, "image_id", where), []).append({"question": text, **answers_by_question[question_id], "question_id": question_id})
    if not by_image:
        raise StorageError(f"{questions_uri}: no questions")

    folder, files = _images(root, questions_doc, image_root)
    missing = [image_id for image_id in by_image if _image_id(image_id) not in files]
    if missing:
        raise StorageError(
            f"{folder}: no image for image_id {missing[0]} ({len(missing)} of {len(by_image)} missing; VQA names them "
            f"COCO_<subtype>_<image_id:012d>.jpg); put the images there or pass the folder holding them (image_root)"
        )

    def read() -> Iterator[EvalRecord]:
        for image_id, questions in by_image.items():
            image_uri = files[_image_id(image_id)]
            yield EvalRecord(key=image_uri[len(folder) + 1 :], image=open_storage(image_uri).read_bytes(image_uri), questions=tuple(questions))

    answers = tuple(sorted({question["answer"] for questions in by_image.values() for question in questions}))
    return EvalSource(name=dataset_name(root), uri=uri, format="vqa", classnames=(), read=read, answers=answers)


def _pair(root: str, split: str) -> tuple[str, str]:
    prefix = root + "/"
    top = [item for item in open_storage(root).list(prefix) if "/" not in item[len(prefix):]]
    questions = [item for item in top if item.endswith("questions.json")]
    if len(questions) > 1:
        questions = [item for item in questions if split in item[len(prefix):]] or questions
    if len(questions) != 1:
        raise StorageError(
            f"{root}: expected one *questions.json beside its *annotations.json (VQA's layout), found "
            f"{', '.join(item[len(prefix):] for item in questions) or 'none'}{'; pick one with the split' if questions else ''}"
        )
    question_file = questions[0][len(prefix):]
    # v2_OpenEnded_mscoco_val2014_questions.json pairs with v2_mscoco_val2014_annotations.json: match on the subtype.
    subtype = question_file.removesuffix("questions.json").rstrip("_").rsplit("_", 1)[-1]
    annotations = [item for item in top if item.endswith("annotations.json")]
    if len(annotations) > 1:
        annotations = [item for item in annotations if subtype in item[len(prefix):]] or annotations
    if len(annotations) != 1:
        raise StorageError(f"{root}: expected one *annotations.json to go with {question_file}, found {len(annotations)}")
    return questions[0], annotations[0]


def _images(root: str, questions_doc: dict, image_root: str | None) -> tuple[str, dict[int, str]]:
    """(the image folder, image id -> URI): image_root, else VQA's `<data_subtype>/`, else `images/`."""
    subtype = questions_doc.get("data_subtype")
    if image_root:
        candidates = [image_root]
    else:
        candidates = [join(root, subtype)] if isinstance(subtype, str) and subtype else []
        candidates.append(join(root, "images"))
    for folder in candidates:
        found: dict[int, str] = {}
        for relative, uri in image_index(folder).items():
            match = TRAILING_NUMBER.search(relative)
            if match:
                found.setdefault(int(match.group(1)), uri)
        if found or folder == candidates[-1]:
            return folder.rstrip("/"), found
    raise AssertionError("unreachable: the last candidate returns")


def _image_id(image_id) -> int | None:
    try:
        return int(image_id)
    except (TypeError, ValueError):
        return None


def is_vqa_folder(listing: list[str], prefix: str) -> bool:
    top = [item[len(prefix):] for item in listing if "/" not in item[len(prefix):]]
    return any(name.endswith("questions.json") for name in top) and any(name.endswith("annotations.json") for name in top)


__all__ = ["open_vqa", "is_vqa_folder"]
