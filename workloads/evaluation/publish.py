"""Where evaluation results go: one JSON per (model, dataset, task) in storage, and metrics, JSON files and
figures on an MLflow run."""

from __future__ import annotations

import json
import re
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
}


def mlflow_metric_name(result: dict, key: str) -> str:
    """`zeroshot/shapes/acc1`, `retrieval/shapes/image_retrieval_recall_at_1` (MLflow keys cannot hold '@')."""
    prefix = TASK_PREFIXES.get(result["task"], result["task"])
    return f"{prefix}/{result['dataset']}/{key.replace('@', '_at_')}"


def flat_metrics(results: list[dict]) -> dict[str, float]:
    return {mlflow_metric_name(result, key): float(value) for result in results for key, value in result["metrics"].items()}


def result_filename(result: dict, with_model: bool = False) -> str:
    """`shapes-zeroshot_classification.json` within one run's results; with the model named, for a folder
    that collects many models: `shapes_shapes-clip@champion_zeroshot_classification.json`."""
    if with_model:
        return f"{slug(result['dataset'])}_{slug(result['model'])}_{result['task']}.json"
    return f"{slug(result['dataset'])}-{result['task']}.json"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9@.=-]+", "-", text).strip("-") or "model"


def write_results(results: list[dict], results_uri: str, with_model: bool = False) -> list[str]:
    """Each result as indented JSON under `results_uri` (local or s3://); returns the URIs written."""
    written = []
    for result in results:
        uri = join(results_uri, result_filename(result, with_model))
        open_storage(uri).write_bytes(uri, json.dumps(result, indent=2).encode())
        written.append(uri)
    return written


def log_to_mlflow(mlflow_client, run_id: str, results: list[dict], plots: list[Path], with_model: bool = False) -> dict[str, float]:
    """Metrics (flat names), each result JSON under `results/` and each figure under `plots/`; returns the metrics."""
    import time

    from mlflow.entities import Metric

    flat = flat_metrics(results)
    timestamp = int(time.time() * 1000)
    items = [Metric(key, value, timestamp, 0) for key, value in flat.items()]
    for start in range(0, len(items), 500):
        mlflow_client.log_batch(run_id, metrics=items[start : start + 500])
    for result in results:
        mlflow_client.log_text(run_id, json.dumps(result, indent=2), f"results/{result_filename(result, with_model)}")
    for plot in plots:
        mlflow_client.log_artifact(run_id, str(plot), "plots")
    return flat
