"""VQA as answer classification: splits by image, a probe that needs the image, and fusion against concatenation."""

from __future__ import annotations

import pytest
import torch
from colour_toy import ANSWERS, write_shards
from fusion_toy import ColourDual, ColourFusion, built

from vlp.platform.spec.evaluation import EvalSection
from vlp.workloads.data.readers import ReaderOptions, open_source
from vlp.workloads.evaluation.publish import flat_metrics
from vlp.workloads.evaluation.suite import run_suite
from vlp.workloads.evaluation.vqa import QuestionSet, split_by_image, vqa_accuracy

pytestmark = pytest.mark.usefixtures("one_thread")
SECTION = EvalSection(templates=("a {} square",), batch_size=7, retrieval=False, linear_probe=False, modality_gap=False, probe_split=(0.5, 0.25))


def test_split_by_image_keeps_every_images_questions_together():
    image_rows = torch.tensor([0, 0, 0, 1, 2, 2, 3, 4, 4, 5, 6, 7, 7, 7, 8, 9])
    train, val, test = split_by_image(image_rows, (0.5, 0.2))
    assert sorted(torch.cat([train, val, test]).tolist()) == list(range(len(image_rows)))
    images = [set(image_rows[part].tolist()) for part in (train, val, test)]
    assert not (images[0] & images[1]) and not (images[0] & images[2]) and not (images[1] & images[2])
    assert [len(part) for part in images] == [5, 2, 3]


def synthetic_questions(images: int, informative: bool, seed: int = 0) -> tuple[torch.Tensor, QuestionSet]:
    """Two questions per image, answers drawn at random; features hold the answer only when `informative`."""
    generator = torch.Generator().manual_seed(seed)
    asked = QuestionSet()
    for image in range(images):
        for kind in ("colour", "count"):
            asked.image_rows.append(image)
            asked.questions.append(f"which {kind}?")
            asked.kinds.append(kind)
            asked.answers.append(ANSWERS[int(torch.randint(len(ANSWERS), (1,), generator=generator))])
    answers = torch.tensor([ANSWERS.index(answer) for answer in asked.answers])
    noise = torch.randn(len(answers), 8, generator=generator)
    features = torch.cat([torch.nn.functional.one_hot(answers, len(ANSWERS)).float(), noise], dim=1) if informative else noise
    return features, asked


def test_features_that_hold_the_answer_score_1_and_noise_scores_near_the_prior():
    features, asked = synthetic_questions(60, informative=True)
    metrics = vqa_accuracy(features, asked, ANSWERS, (0.5, 0.25), (1e-4, 1e-2))
    assert metrics["acc1"] == 1.0 and metrics["acc1/colour"] == 1.0 and metrics["acc1/count"] == 1.0
    assert metrics["num_test_questions"] == 2 * metrics["num_test_images"] == 30 and metrics["num_train_questions"] == 90
    noise, asked = synthetic_questions(60, informative=False)
    blind = vqa_accuracy(noise, asked, ANSWERS, (0.5, 0.25), (1e-4, 1e-2))
    assert blind["acc1"] < 0.5 and blind["prior_acc1"] < 0.5


def test_answers_outside_the_vocabulary_are_left_out_and_too_few_images_give_none():
    features, asked = synthetic_questions(12, informative=True)
    metrics = vqa_accuracy(features, asked, ANSWERS[:3], (0.5, 0.25), (1e-2,))
    kept = sum(answer in ANSWERS[:3] for answer in asked.answers)
    assert metrics is None or metrics["num_train_questions"] + metrics["num_test_questions"] <= kept
    assert vqa_accuracy(features[:2], QuestionSet([0, 0], asked.questions[:2], asked.answers[:2], asked.kinds[:2]), ANSWERS, (0.5, 0.25), (1e-2,)) is None


def test_fused_pairs_answer_what_the_concatenated_dual_embeddings_cannot(tmp_path):
    source = open_source(str(write_shards(tmp_path / "wds", 48, questions=True)), options=ReaderOptions(label_field="colour"))
    assert source.answers == ANSWERS
    fused = {result["task"]: result for result in run_suite(built(ColourFusion()), source, SECTION, "toy").results}["vqa"]
    assert fused["metrics"]["acc1"] == 1.0 and fused["metrics"]["acc1/exists"] == 1.0 and fused["metrics"]["acc1/colour"] == 1.0
    assert fused["num_images"] == 12 and fused["num_captions"] == 24  # test images and their questions
    assert "vqa/wds/acc1/exists" in flat_metrics([fused])
    dual = {result["task"]: result for result in run_suite(built(ColourDual()), source, SECTION, "toy").results}["vqa"]
    # "is the square red?" needs image and text together: not linear in [image colour, text colour].
    assert dual["metrics"]["acc1/colour"] == 1.0 and dual["metrics"]["acc1/exists"] < 0.9
    assert run_suite(built(ColourFusion()), open_source(str(write_shards(tmp_path / "plain", 12)), options=ReaderOptions(label_field="colour")), SECTION, "toy").skipped["vqa"] == "the images have no questions"
