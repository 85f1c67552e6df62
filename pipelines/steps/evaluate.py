"""Evaluate step: run the evaluation battery on the held-out shards, store results JSON, log metrics."""

from __future__ import annotations

import json

from vlp.pipelines.steps.context import decode, storage_root
from vlp.platform.layout import RunLayout
from vlp.platform.storage import join, open_storage
from vlp.platform.tracking.runs import client


def run(spec_json: str, runtime_json: str, run_id: str, checkpoint_uri: str, eval_uri: str) -> str:
    """Returns the flat metrics as JSON (`zeroshot/shapes/acc1` -> value)."""
    spec, runtime = decode(spec_json, runtime_json)
    if not eval_uri:
        return json.dumps({})
    from vlp.workloads.data.shards import list_shards, read_manifest
    from vlp.workloads.evaluation.encode import load_trained_model
    from vlp.workloads.evaluation.suite import mlflow_metric_name, run_suite

    built = load_trained_model(checkpoint_uri)
    dataset = "shapes" if spec.data.source == "shapes" else eval_uri.rstrip("/").rsplit("/", 1)[-1]
    results = run_suite(built, list_shards(eval_uri), read_manifest(eval_uri), spec.eval, dataset, spec.registration.model_name)

    layout = RunLayout(storage_root(spec, runtime), run_id)
    mlflow_client = client(runtime.tracking_uri)
    flat: dict[str, float] = {}
    for result in results:
        document = json.dumps(result, indent=2)
        name = f"{result['dataset']}-{result['task']}.json"
        open_storage(layout.results).write_bytes(join(layout.results, name), document.encode())
        mlflow_client.log_text(run_id, document, f"results/{name}")
        for key, value in result["metrics"].items():
            flat[mlflow_metric_name(result, key)] = value
    for key, value in flat.items():
        mlflow_client.log_metric(run_id, key, value)
    return json.dumps(flat)
