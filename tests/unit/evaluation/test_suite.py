"""The whole battery on the toy data with a toy model that gets everything right, and what it skips."""

from __future__ import annotations

import math

import pytest
from colour_toy import toy_model, write_image_folder, write_shards
from PIL import Image

from vlp.platform.spec.evaluation import EvalSection
from vlp.workloads.data.readers import ReaderOptions, open_source
from vlp.workloads.evaluation.publish import flat_metrics, write_results
from vlp.workloads.evaluation.suite import run_suite

pytestmark = pytest.mark.usefixtures("one_thread")

SECTION = EvalSection(templates=("a {} square",), probe_split=(0.5, 0.25), batch_size=7)


def by_task(output) -> dict[str, dict]:
    return {result["task"]: result["metrics"] for result in output.results}


def test_every_task_scores_the_toy_model_perfectly_and_draws_its_plots(tmp_path):
    source = open_source(str(write_shards(tmp_path / "wds", 36)), options=ReaderOptions(label_field="colour"))
    output = run_suite(toy_model(patch_maps=True), source, SECTION, "colour-clip", plot_dir=tmp_path / "plots")
    metrics = by_task(output)
    # The toy data has no questions or referring expressions, the toy model no ITM head.
    assert set(output.skipped) == {"vqa", "itm_rerank", "visual_grounding"}
    # Three classes: acc5 is undefined, written as NaN like CLIP_benchmark does.
    assert metrics["zeroshot_classification"]["acc1"] == 1.0 and metrics["zeroshot_classification"]["mean_per_class_recall"] == 1.0
    assert math.isnan(metrics["zeroshot_classification"]["acc5"])
    # Each colour's 12 images share one caption and one embedding. A caption is right only for its own image,
    # as in CLIP_benchmark: the 12 identical queries get the same top k of the 12 tied images, so k of them hit.
    assert metrics["zeroshot_retrieval"] == pytest.approx({f"{way}_retrieval_recall@{k}": k / 12 for k in (1, 5, 10) for way in ("image", "text")})
    assert metrics["linear_probe"]["lp_acc1"] == 1.0
    assert metrics["domain_accuracy"] == {"acc1/bright": 1.0, "acc1/dark": 1.0, "mean_acc1": 1.0, "worst_acc1": 1.0}
    # Image and text embeddings are the same unit vectors: no gap at all.
    assert metrics["modality_gap"]["gap"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["zeroshot_segmentation"]["miou"] == 1.0 and metrics["zeroshot_segmentation"]["images"] == 36
    assert {result["dataset"] for result in output.results} == {"wds"}
    names = sorted(path.name for path in output.plots)
    assert names == sorted(f"wds-{kind}.png" for kind in ("confusion-matrix", "per-domain", "recall-at-k", "embedding-projection", "patch-heatmaps"))
    for path in output.plots:
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 100


def test_results_are_written_in_clip_benchmark_layout(tmp_path):
    import json

    source = open_source(str(write_shards(tmp_path / "wds", 12)), options=ReaderOptions(label_field="colour"))
    output = run_suite(toy_model(), source, SECTION, "colour-clip", dataset_name="toy")
    uris = write_results(output.results, str(tmp_path / "results"))
    document = json.loads(open(uris[0]).read())
    assert list(document) == ["dataset", "model", "pretrained", "task", "metrics", "language", "num_images", "num_captions"]
    assert (document["dataset"], document["model"], document["pretrained"], document["language"]) == ("toy", "colour-clip", "", "en")
    assert uris[0].endswith("/toy__colour-clip_en_zeroshot_classification.json")
    counts = {result["task"]: (result["num_images"], result["num_captions"]) for result in output.results}
    assert counts["zeroshot_classification"] == (12, 0) and counts["zeroshot_retrieval"] == (12, 12)
    flat = flat_metrics(output.results)
    assert flat["zeroshot/toy/acc1"] == 1.0 and flat["retrieval/toy/text_retrieval_recall_at_5"] == 1.0
    assert "zeroshot/toy/acc5" not in flat  # NaN stays in the JSON, out of MLflow


def test_tasks_the_data_or_model_cannot_support_are_skipped_with_a_reason(tmp_path):
    source = open_source(str(write_image_folder(tmp_path / "folder", 18)))
    output = run_suite(toy_model(), source, SECTION, "colour-clip")
    assert set(output.skipped) == {"zeroshot_retrieval", "domain_accuracy", "zeroshot_segmentation", "vqa", "itm_rerank", "visual_grounding"}
    assert "patch–text" in output.skipped["zeroshot_segmentation"]
    # Without captions the gap is measured against each image's class prompt.
    assert by_task(output)["modality_gap"]["gap"] == pytest.approx(0.0, abs=1e-6)
    assert by_task(output)["zeroshot_classification"]["acc1"] == 1.0


def test_vlp_pacl_model_takes_part_in_segmentation(tmp_path):
    """The contract with `arch: pacl`: its `patch_text_similarity` maps are scored against the masks."""
    from vlp.platform.spec.model import ModelSection
    from vlp.workloads.models.catalog import load_model_cfg
    from vlp.workloads.models.factory import build_model_from_cfg, compose_model_cfg

    pacl = build_model_from_cfg(compose_model_cfg(ModelSection(arch="pacl", preset="shapes-vit-tiny"), load_model_cfg("shapes-vit-tiny")))
    source = open_source(str(write_shards(tmp_path / "wds", 8)), options=ReaderOptions(label_field="colour"))
    section = SECTION.model_copy(update={"retrieval": False, "linear_probe": False, "modality_gap": False})
    output = run_suite(pacl, source, section, "pacl", plot_dir=tmp_path / "plots")
    metrics = by_task(output)["zeroshot_segmentation"]
    assert metrics["images"] == 8 and 0.0 <= metrics["miou"] <= 1.0 and 0.0 <= metrics["pixel_acc"] <= 1.0
    assert "wds-patch-heatmaps.png" in {path.name for path in output.plots}
