"""Evaluation results in CLIP_benchmark's shape, and where they go: one JSON per (dataset, model, task) in
storage, and metrics, JSON files and figures on an MLflow run.

A result is what `clip_benchmark eval` dumps — `dataset`, `model`, `pretrained`, `task`, `metrics`,
`language` — plus `num_images` and `num_captions`, what it was computed on (CLIP_benchmark's `build`
turns extra keys into extra columns). Files are named by its default `--output` template,
`{dataset}_{pretrained}_{model}_{language}_{task}.json`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from vlp.platform.storage import join, open_storage

# MLflow key prefix per task; `zeroshot/<dataset>/acc1` is what registration gates name.
TASK_PREFIXES = {
    "zeroshot_classification": "zeroshot",
    "zeroshot_retrieval": "retrieval",
    "linear_probe": "linear_probe",
    "zeroshot_segmentation": "segmentation",
    "modality_gap": "modality_gap",
    "domain_accuracy": "domain",
    "visual_grounding": "grounding",
}
REGISTRY_PREFIX = "models:/"


def make_result(dataset: str, model: str, pretrained: str, task: str, metrics: dict, language: str, num_images: int, num_captions: int = 0) -> dict:
    return {
        "dataset": dataset, "model": model, "pretrained": pretrained, "task": task, "metrics": metrics, "language": language,
        "num_images": num_images, "num_captions": num_captions,
    }


def mlflow_metric_name(result: dict, key: str) -> str:
    """`zeroshot/shapes/acc1`, `retrieval/shapes/image_retrieval_recall_at_1` (MLflow keys cannot hold '@')."""
    prefix = TASK_PREFIXES.get(result["task"], result["task"])
    return f"{prefix}/{dataset_slug(result['dataset'])}/{key.replace('@', '_at_')}"


def flat_metrics(results: list[dict]) -> dict[str, float]:
    """Every numeric metric under its MLflow name. NaN (acc5 with fewer than five classes) is left out: a
    gate on an undefined metric should say it is missing, not compare against NaN."""
    flat = {}
    for result in results:
        for key, value in result["metrics"].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
                flat[mlflow_metric_name(result, key)] = float(value)
    return flat


def result_filename(result: dict) -> str:
    """`{dataset}_{pretrained}_{model}_{language}_{task}.json` with CLIP_benchmark's slugs: `wds/vtab/cifar10` ->
    `vtab_cifar10`, a weights file by its base name; `/` elsewhere becomes `_`."""
    return f"{evaluation_name(result)}_{result['task']}.json"


def evaluation_name(result: dict) -> str:
    """`{dataset}_{pretrained}_{model}_{language}`: what the results of one model on one dataset share."""
    return "_".join((dataset_slug(result["dataset"]), pretrained_slug(result["pretrained"]), result["model"].replace("/", "_"), result["language"]))


def dataset_slug(dataset: str) -> str:
    return dataset.removeprefix("wds/").replace("/", "_")


def pretrained_slug(pretrained: str) -> str:
    if pretrained.startswith(REGISTRY_PREFIX):
        return pretrained[len(REGISTRY_PREFIX):].replace("/", "_")
    return pretrained.rstrip("/").rsplit("/", 1)[-1]


def write_results(results: list[dict], results_uri: str) -> list[str]:
    """Each result as JSON under `results_uri` (local or s3://); returns the URIs written. NaN is written as
    CLIP_benchmark's `json.dump` writes it (`NaN`)."""
    written = []
    for result in results:
        uri = join(results_uri, result_filename(result))
        open_storage(uri).write_bytes(uri, json.dumps(result, indent=2).encode())
        written.append(uri)
    return written


def log_to_mlflow(mlflow_client, run_id: str, results: list[dict], plots: list[Path], step: int = 0) -> dict[str, float]:
    """Metrics (flat names) at `step` (the training step of the weights measured), each result JSON under `results/`
    and each figure under `plots/`; returns the metrics."""
    import time

    from mlflow.entities import Metric

    flat = flat_metrics(results)
    timestamp = int(time.time() * 1000)
    items = [Metric(key, value, timestamp, step) for key, value in flat.items()]
    for start in range(0, len(items), 500):
        mlflow_client.log_batch(run_id, metrics=items[start : start + 500])
    for result in results:
        mlflow_client.log_text(run_id, json.dumps(result, indent=2), f"results/{result_filename(result)}")
    for plot in plots:
        mlflow_client.log_artifact(run_id, str(plot), "plots")
    return flat
