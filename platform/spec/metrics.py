"""The metric names an experiment's configured evaluation produces, so that gates and the headline are checked
when the file is read instead of when `vlp promote` finds nothing to compare.

The names follow vlp.workloads.evaluation.publish (`<task prefix>/<dataset slug>/<CLIP_benchmark key>`) and
vlp.workloads.dg.table; tests/unit/evaluation/test_metric_catalogue.py runs the evaluation suite and checks the
catalogue against what it logs.
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vlp.platform.spec.experiment import ExperimentSpec

# Per `eval:` switch: the MLflow prefix of its task and the keys its metrics dict holds (`@` written `_at_`).
TASK_METRICS = {
    "zeroshot": ("zeroshot", ("acc1", "acc5", "mean_per_class_recall")),
    "retrieval": ("retrieval", tuple(f"{side}_retrieval_recall_at_{k}" for side in ("image", "text") for k in (1, 5, 10))),
    "linear_probe": ("linear_probe", ("lp_acc1", "lp_acc5", "lp_mean_per_class_recall", "weight_decay", "val_acc1", "num_train_images")),
    "segmentation": ("segmentation", ("miou", "miou_foreground", "pixel_acc", "images")),
    "modality_gap": ("modality_gap", ("gap", "image_centroid_norm", "text_centroid_norm", "mean_pair_cosine")),
    "per_domain": ("domain", ("acc1/*", "mean_acc1", "worst_acc1")),
    "vqa": ("vqa", ("acc1", "acc1/*", "prior_acc1", "weight_decay", "val_acc1", "num_train_questions", "num_test_questions")),
    "itm_rerank": ("itm_rerank", (*(f"{stage}{side}_retrieval_recall_at_{k}" for stage in ("", "before/") for side in ("image", "text") for k in (1, 5)), "top_k")),
    "grounding": ("grounding", ("acc_at_0.5", "acc_at_0.5/*", "miou", "num_expressions")),
}
# Switches only some architectures can serve (ITM re-ranking needs a matching head); a grounding model is measured
# on grounding alone (vlp.workloads.evaluation.grounding).
ARCH_SWITCHES = {"itm_rerank": ("fusion", "flava")}
GROUNDING_ONLY = ("transvg",)
# Clips (vlp.workloads.evaluation.video_suite): per switch, names under `<prefix>/<slug>/`, where `-*` stands for a
# class family (motion, shape, colour) the clips are labelled with.
VIDEO_TASK_METRICS = {
    "zeroshot": ("zeroshot", tuple(f"-*/{key}" for key in ("acc1", "acc5", "mean_per_class_recall", "recall/*", "pair_acc1/*", "order_pair_acc1"))),
    "retrieval": ("retrieval", tuple(f"/{side}_retrieval_recall_at_{k}" for side in ("video", "text") for k in (1, 5, 10))),
    "linear_probe": ("linear_probe", tuple(f"-*/{key}" for key in TASK_METRICS["linear_probe"][1])),
    "modality_gap": ("modality_gap", tuple(f"/{key}" for key in TASK_METRICS["modality_gap"][1])),
}
VIDEO_ALWAYS = ("temporal_order", ("/reversed_cosine", "/reversed_cosine_min"))
SHAPES_DATASET = "shapes"
SHAPES_VIDEO_DATASET = "shapes-video"
# The first part of every metric an evaluation or a DG study logs (training curves, data, model and system
# metrics have others).
EVALUATION_PREFIXES = tuple(dict.fromkeys(
    f"{prefix}/" for prefix in (*(p for p, _ in TASK_METRICS.values()), *(p for p, _ in VIDEO_TASK_METRICS.values()), VIDEO_ALWAYS[0], "dg")
))


def eval_dataset_slug(spec: "ExperimentSpec") -> str | None:
    """The dataset part of evaluation metric names, or None when the experiment evaluates nothing."""
    if spec.data.source == "shapes":
        return SHAPES_DATASET if spec.data.shapes.video is None else SHAPES_VIDEO_DATASET
    if not spec.data.eval:
        return None
    # A shards folder is named after its last path segment (vlp.workloads.data.readers.records.dataset_name).
    return spec.data.eval.rstrip("/").rsplit("/", 1)[-1] or "dataset"


def known_metric_patterns(spec: "ExperimentSpec") -> list[str]:
    """Metric names (fnmatch patterns where a part comes from the data, such as a domain) the run will log."""
    if spec.workload == "dg":
        return [f"dg/{method}/{part}" for method in spec.dg.methods for part in ((*spec.dg.domains, "avg") if spec.dg.domains else ("*",))]
    slug = eval_dataset_slug(spec)
    if slug is None:
        return []
    if spec.model.arch == "video" or (spec.data.source == "shapes" and spec.data.shapes.video is not None):
        video = [f"{prefix}/{slug}{key}" for switch, (prefix, keys) in VIDEO_TASK_METRICS.items() if getattr(spec.eval, switch) for key in keys]
        return video + [f"{VIDEO_ALWAYS[0]}/{slug}{key}" for key in VIDEO_ALWAYS[1]]
    switches = ("grounding",) if spec.model.arch in GROUNDING_ONLY else TASK_METRICS
    return [
        f"{prefix}/{slug}/{key}" for switch, (prefix, keys) in TASK_METRICS.items()
        if switch in switches and getattr(spec.eval, switch) and spec.model.arch in ARCH_SWITCHES.get(switch, (spec.model.arch,)) for key in keys
    ]


def unknown_metric(name: str, patterns: list[str]) -> bool:
    return not any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def describe_known(patterns: list[str]) -> str:
    return ", ".join(patterns) if patterns else "none: the configured evaluation measures nothing"
