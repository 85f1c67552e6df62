"""Exit step: mark the MLflow run FINISHED or FAILED from the pipeline's final state, so no run stays RUNNING."""

from __future__ import annotations

from vlp.platform.runtime import RuntimeContext
from vlp.platform.tracking.runs import client, find_run_by_key, finish_run


def run(runtime_json: str, pipeline_state: str, error: str = "") -> str:
    runtime = RuntimeContext.model_validate_json(runtime_json)
    run_id = find_run_by_key(runtime.run_key, runtime.tracking_uri)
    if run_id is None:
        return "NO_RUN"
    status = "FINISHED" if pipeline_state == "SUCCEEDED" else "FAILED"
    # A step that failed may have recorded its own reason already; keep that over the pipeline's generic one.
    if error and status == "FAILED" and "vlp.error" not in client(runtime.tracking_uri).get_run(run_id).data.tags:
        client(runtime.tracking_uri).set_tag(run_id, "vlp.error", error[:4000])
    finish_run(run_id, status, runtime.tracking_uri)
    return status
