"""First step: open the MLflow run that every later step and the training workers log into."""

from __future__ import annotations

import json

from vlp.pipelines.steps.context import decode, storage_root
from vlp.platform.layout import RunLayout
from vlp.platform.storage import open_storage
from vlp.platform.tracking.runs import find_run_by_key, reopen_run, start_run


def run(spec_json: str, runtime_json: str) -> str:
    spec, runtime = decode(spec_json, runtime_json)
    tags = {
        "vlp.team": spec.team,
        "vlp.workload": spec.workload,
        "vlp.spec_hash": spec.spec_hash(),
        "vlp.run_key": runtime.run_key,
        "vlp.scheduler": runtime.scheduler,
        "mlflow.source.git.commit": runtime.git_commit,
    }
    run_id = find_run_by_key(runtime.run_key, runtime.tracking_uri)
    if run_id is not None:
        # `vlp run --resume` (or a retried step): continue the run this submission opened; training resumes from its checkpoint.
        reopen_run(run_id, runtime.tracking_uri)
    else:
        run_id = start_run(spec.name, f"{spec.name}-{runtime.run_key[:8]}", tags, spec.flat_params(), runtime.tracking_uri)
    layout = RunLayout(storage_root(spec, runtime), run_id)
    open_storage(layout.spec).write_bytes(layout.spec, json.dumps(json.loads(spec_json), indent=2).encode())
    return run_id
