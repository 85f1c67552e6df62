"""Evaluate step: run the evaluation battery on the held-out data, store the results JSON, log metrics and plots."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from vlp.pipelines.steps.context import decode, storage_root
from vlp.platform.layout import RunLayout
from vlp.platform.tracking.runs import client


def run(spec_json: str, runtime_json: str, run_id: str, checkpoint_uri: str, eval_uri: str) -> str:
    """Returns the flat metrics as JSON (`zeroshot/shapes/acc1` -> value)."""
    spec, runtime = decode(spec_json, runtime_json)
    if not eval_uri:
        return json.dumps({})
    from vlp.workloads.data.readers import ReaderOptions, open_source
    from vlp.workloads.evaluation.encode import load_trained_model
    from vlp.workloads.evaluation.publish import log_to_mlflow, write_results
    from vlp.workloads.evaluation.suite import run_suite

    built = load_trained_model(checkpoint_uri)
    source = open_source(eval_uri, "auto", ReaderOptions(label_field=spec.eval.label_field, domain_field=spec.eval.domain_field))
    dataset = "shapes" if spec.data.source == "shapes" else source.name
    with tempfile.TemporaryDirectory() as scratch:
        output = run_suite(built, source, spec.eval, spec.registration.model_name, plot_dir=Path(scratch), dataset_name=dataset)
        write_results(output.results, RunLayout(storage_root(spec, runtime), run_id).results)
        flat = log_to_mlflow(client(runtime.tracking_uri), run_id, output.results, output.plots)
    return json.dumps(flat)
