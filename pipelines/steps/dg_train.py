"""DG train step, one per held-out domain: open a child MLflow run per method, launch the DG workload under
torchrun through TorchX, and return the domain's results. A domain whose results a previous attempt already
stored (a resumed or retried run) is not trained again.

The step takes only the held-out domain (and the spec): it finds the study's run by the submission's run key,
the dataset and the pretrained model from the spec and the run. Inside a ParallelFor, kfp.local (2.17) replaces
every argument that is another task's output with the loop item, so nothing else may come in as one.
"""

from __future__ import annotations

import hashlib
import json

from vlp.pipelines.steps.context import decode, storage_root
from vlp.pipelines.steps.launching import worker_launch_request
from vlp.platform.launch.torchx_launcher import LaunchFailed, LaunchRequest, launch_and_wait
from vlp.platform.layout import RunLayout
from vlp.platform.storage import open_storage

WORKER_MODULE = "vlp.workloads.dg.main"


def run(spec_json: str, runtime_json: str, held_out: str) -> str:
    """Returns this held-out domain's results as JSON (see `vlp.workloads.dg.study.run_held_out`)."""
    from vlp.pipelines.steps import dg_data, dg_pretrained
    from vlp.platform.tracking.runs import find_run_by_key
    from vlp.workloads.dg.study import result_uri

    spec, runtime = decode(spec_json, runtime_json)
    run_id = find_run_by_key(runtime.run_key, runtime.tracking_uri)
    if run_id is None:
        raise LaunchFailed(f"no MLflow run tagged with run key {runtime.run_key} (did start-run fail?)")
    dataset_uri = dg_data.ensure_dataset(spec, runtime)
    pretrained = dg_pretrained.reference(spec, runtime, run_id)
    layout = RunLayout(storage_root(spec, runtime), run_id)
    uri = result_uri(layout, held_out)
    storage = open_storage(uri)
    children = open_child_runs(spec, runtime, run_id, held_out)
    if not storage.exists(uri):
        result = launch_and_wait(launch_request(spec, runtime, layout, dataset_uri, pretrained, held_out, children))
        if not result.succeeded:
            close_child_runs(children, "FAILED", runtime.tracking_uri)
            raise LaunchFailed(f"DG job for held-out domain {held_out} ({result.app_handle}) failed: {result.reason}")
        if not storage.exists(uri):
            close_child_runs(children, "FAILED", runtime.tracking_uri)
            raise LaunchFailed(f"DG job for held-out domain {held_out} succeeded but wrote no results at {uri}")
    close_child_runs(children, "FINISHED", runtime.tracking_uri)
    return storage.read_bytes(uri).decode()


def open_child_runs(spec, runtime, parent_run_id: str, held_out: str) -> dict[str, str]:
    """{method: run id}: one child of the study's run per method (found again, and reopened, on a retry)."""
    from vlp.platform.tracking.runs import client, reopen_run, start_run

    mlflow_client = client(runtime.tracking_uri)
    experiment_id = mlflow_client.get_run(parent_run_id).info.experiment_id
    existing = mlflow_client.search_runs(
        [experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}' and tags.`vlp.dg.held_out` = '{held_out}'"
    )
    children = {run.data.tags.get("vlp.dg.method"): run.info.run_id for run in existing}
    for method in spec.dg.methods:
        if method in children:
            reopen_run(children[method], runtime.tracking_uri)
            continue
        tags = {"mlflow.parentRunId": parent_run_id, "vlp.workload": "dg", "vlp.dg.held_out": held_out, "vlp.dg.method": method}
        params = {"held_out": held_out, "method": method, "steps": str(spec.dg.steps), "trials": str(spec.dg.trials)}
        children[method] = start_run(spec.name, f"{held_out}/{method}", tags, params, runtime.tracking_uri)
    return {method: children[method] for method in spec.dg.methods}


def close_child_runs(children: dict[str, str], status: str, tracking_uri: str) -> None:
    from vlp.platform.tracking.runs import finish_run

    for run_id in children.values():
        finish_run(run_id, status, tracking_uri)


def launch_request(spec, runtime, layout: RunLayout, dataset_uri: str, pretrained: str, held_out: str, children: dict[str, str]) -> LaunchRequest:
    args = [
        "--storage-root", layout.storage_root,
        "--run-id", layout.run_id,
        "--tracking-uri", runtime.tracking_uri,
        "--dataset", dataset_uri,
        "--held-out", held_out,
        "--pretrained", pretrained,
        "--child-runs", json.dumps(children),
    ]
    # One job per held-out domain, named apart by a short digest (domain names need not be valid in a job name).
    return worker_launch_request(spec, runtime, WORKER_MODULE, args, f"dg-{hashlib.sha256(held_out.encode()).hexdigest()[:4]}")
