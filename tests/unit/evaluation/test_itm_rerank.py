"""ITM re-ranking of the dual encoder's top k: what a perfect, a random and an indifferent match head do to recall."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from colour_toy import write_shards
from fusion_toy import ColourDual, ColourFusion, built

from vlp.platform.spec.evaluation import EvalSection
from vlp.workloads.data.readers import ReaderOptions, open_source
from vlp.workloads.evaluation.itm_rerank import rerank_metrics
from vlp.workloads.evaluation.publish import flat_metrics
from vlp.workloads.evaluation.retrieval import retrieval_metrics
from vlp.workloads.evaluation.suite import run_suite

pytestmark = pytest.mark.usefixtures("one_thread")


def noisy_pairs(images: int = 30, captions_per_image: int = 2, noise: float = 0.9, seed: int = 0):
    """Image features and captions near their image's, noisy enough that the dual encoder's R@1 is well below 1."""
    generator = torch.Generator().manual_seed(seed)
    image_features = F.normalize(torch.randn(images, 16, generator=generator), dim=-1)
    text_to_image = torch.arange(images).repeat_interleave(captions_per_image)
    text_features = F.normalize(image_features[text_to_image] + noise * torch.randn(len(text_to_image), 16, generator=generator), dim=-1)
    return image_features, text_features, text_to_image


def perfect(text_to_image):
    return lambda image_rows, text_ids: (text_to_image[text_ids] == image_rows).float()


def test_before_is_the_dual_encoders_retrieval():
    image_features, text_features, text_to_image = noisy_pairs()
    metrics = rerank_metrics(image_features, text_features, text_to_image, perfect(text_to_image), top_k=5)
    dual = retrieval_metrics(image_features, text_features, text_to_image, ks=(1, 5))
    assert {key.removeprefix("before/"): value for key, value in metrics.items() if key.startswith("before/")} == dual
    assert dual["image_retrieval_recall@1"] < 0.8 and dual["text_retrieval_recall@1"] < 0.8  # room to lift


def test_a_perfect_match_head_lifts_recall_at_1_to_recall_at_k():
    image_features, text_features, text_to_image = noisy_pairs()
    for top_k in (3, 8):
        metrics = rerank_metrics(image_features, text_features, text_to_image, perfect(text_to_image), top_k=top_k, ks=(1, top_k))
        dual = retrieval_metrics(image_features, text_features, text_to_image, ks=(top_k,))
        assert metrics["image_retrieval_recall@1"] == dual[f"image_retrieval_recall@{top_k}"]
        assert metrics["text_retrieval_recall@1"] == dual[f"text_retrieval_recall@{top_k}"]
        # re-ranking only reorders the top k: recall at k stays
        assert metrics[f"image_retrieval_recall@{top_k}"] == metrics[f"before/image_retrieval_recall@{top_k}"]
        assert metrics["top_k"] == top_k
    # every candidate re-scored: a perfect head finds every match
    everything = rerank_metrics(image_features, text_features, text_to_image, perfect(text_to_image), top_k=len(text_features))
    assert everything["image_retrieval_recall@1"] == 1.0 and everything["text_retrieval_recall@1"] == 1.0


def test_a_random_match_head_does_not_lift_and_an_indifferent_one_changes_nothing():
    image_features, text_features, text_to_image = noisy_pairs()
    generator = torch.Generator().manual_seed(1)
    random_head = lambda image_rows, text_ids: torch.rand(len(image_rows), generator=generator)  # noqa: E731
    metrics = rerank_metrics(image_features, text_features, text_to_image, random_head, top_k=len(image_features))
    assert metrics["image_retrieval_recall@1"] < 0.2 and metrics["image_retrieval_recall@1"] < metrics["before/image_retrieval_recall@1"]
    indifferent = rerank_metrics(image_features, text_features, text_to_image, lambda rows, ids: torch.zeros(len(rows)), top_k=10)
    assert all(indifferent[key] == indifferent[f"before/{key}"] for key in indifferent if not key.startswith("before/") and key != "top_k")


def test_identical_captions_are_scored_once_per_image():
    image_features, text_features, text_to_image = noisy_pairs(images=6, captions_per_image=3)
    text_ids = torch.arange(len(text_features)) % 4  # only 4 distinct strings
    scored: list[tuple[int, int]] = []

    def head(image_rows, ids):
        scored.extend(zip(image_rows.tolist(), ids.tolist()))
        return torch.zeros(len(image_rows))

    rerank_metrics(image_features, text_features, text_to_image, head, top_k=6, text_ids=text_ids)
    assert len(scored) == len(set(scored)) and len(scored) <= 6 * 4


def test_the_suite_reranks_for_models_with_a_match_head_and_says_why_not_otherwise(tmp_path):
    source = open_source(str(write_shards(tmp_path / "wds", 24)), options=ReaderOptions(label_field="colour"))
    section = EvalSection(templates=("a {} square",), batch_size=7, linear_probe=False, modality_gap=False, rerank_top_k=12)
    results = {result["task"]: result for result in run_suite(built(ColourFusion()), source, section, "toy").results}
    metrics = results["itm_rerank"]["metrics"]
    assert (results["itm_rerank"]["num_images"], results["itm_rerank"]["num_captions"]) == (24, 24)
    # The head agrees with the dual encoder (both see only colour): 8 tied images per caption, 1 of them right.
    assert metrics["image_retrieval_recall@1"] == metrics["before/image_retrieval_recall@1"] == pytest.approx(1 / 8)
    assert "itm_rerank/wds/before/image_retrieval_recall_at_1" in flat_metrics(list(results.values()))
    # A head that prefers the wrong colour (the top 12 hold 4 images of other colours) puts a wrong image first.
    wrong = {result["task"]: result for result in run_suite(built(ColourFusion(match="inverted")), source, section, "toy").results}
    assert wrong["itm_rerank"]["metrics"]["image_retrieval_recall@1"] == 0.0
    assert run_suite(built(ColourDual()), source, section, "toy").skipped["itm_rerank"].startswith("the model has no image-text matching head")
    assert "switched off" in run_suite(built(ColourFusion(match="off")), source, section, "toy").skipped["itm_rerank"]
