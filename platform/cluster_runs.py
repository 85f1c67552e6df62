"""Runs on a cluster: the KFP run's state beside the MLflow run it feeds, as plain dicts for `vlp runs`.

A submission's run key links the two: `vlp submit` passes it to KFP inside the `runtime_json`
argument, and the pipeline's first step tags the MLflow run with it (`vlp.run_key`). MLflow is read
at the profile's `mlflow.external_uri` only; without one, runs show KFP state alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Callable

from vlp.platform.backends.kfp_cluster import TERMINAL_STATES, KfpCluster
from vlp.platform.cluster_profile import ClusterProfile

# KFP runs each step's code in the pod's "main" container.
STEP_CONTAINER = "main"


def list_cluster_runs(profile: ClusterProfile, limit: int, experiment: str | None = None) -> list[dict]:
    cluster = KfpCluster(profile)
    # Run names start with the experiment name (`<name>-<run key prefix>`).
    runs = [_summary(cluster, run) for run in cluster.list_runs(limit, name_contains=f"{experiment}-" if experiment else None)]
    for run in runs:
        run["mlflow"] = mlflow_run_for_key(profile, run["run_key"])
    return runs


def show_cluster_run(profile: ClusterProfile, run_id: str) -> dict:
    cluster = KfpCluster(profile)
    kfp_run = cluster.get_run(run_id)
    details = _summary(cluster, kfp_run)
    details["tasks"] = _tasks(kfp_run)
    details["mlflow"] = mlflow_run_for_key(profile, details["run_key"])
    return details


def watch_cluster_run(profile: ClusterProfile, run_id: str, on_change: Callable[[dict], None], interval: float = 10.0) -> dict:
    """Poll the KFP run until it ends, calling `on_change` whenever its or a task's state changes."""
    cluster = KfpCluster(profile)
    seen = None
    while True:
        kfp_run = cluster.get_run(run_id)
        details = _summary(cluster, kfp_run)
        details["tasks"] = _tasks(kfp_run)
        fingerprint = (details["state"], tuple((t["name"], t["state"]) for t in details["tasks"]))
        if fingerprint != seen:
            on_change(details)
            seen = fingerprint
        if details["state"] in TERMINAL_STATES:
            details["mlflow"] = mlflow_run_for_key(profile, details["run_key"])
            return details
        time.sleep(interval)


def cancel_cluster_run(profile: ClusterProfile, run_id: str) -> dict:
    """Ask KFP to terminate the run; its step pods stop, and the training step cancels its Volcano job on the way out."""
    cluster = KfpCluster(profile)
    cluster.terminate(run_id)
    return _summary(cluster, cluster.get_run(run_id))


def cluster_run_logs(profile: ClusterProfile, run_id: str) -> dict:
    """Task states plus where the logs are: KFP's API does not serve pod logs, so these are kubectl commands."""
    details = show_cluster_run(profile, run_id)
    pipeline_namespace = profile.kfp.namespace or "kubeflow"
    training_namespace = profile.torchx.scheduler_args.namespace or profile.namespace
    hints = [f"kubectl logs -n {pipeline_namespace} {task['pod']} -c {STEP_CONTAINER}" for task in details["tasks"] if task["pod"]]
    if details["run_key"]:
        selector = f"vlp.io/run-key={details['run_key']}"
        hints.append(f"kubectl get vcjob,pods -n {training_namespace} -l {selector}")
        hints.append(f"kubectl logs -n {training_namespace} -l {selector} --prefix --tail=-1")
    details["log_hints"] = hints
    return details


def mlflow_run_for_key(profile: ClusterProfile, run_key: str | None) -> dict | None:
    """The MLflow run a submission opened, or None; MLflow being unreachable is reported, not raised."""
    uri = profile.mlflow.external_uri
    if not uri or not run_key:
        return None
    from vlp.platform.tracking.runs import client, find_run_by_key

    try:
        with _impatient_mlflow():
            run_id = find_run_by_key(run_key, uri)
            if run_id is None:
                return {"run_id": None, "status": "NOT STARTED", "metrics": {}}
            run = client(uri).get_run(run_id)
    except Exception as err:  # a missing MLflow must not hide the KFP state
        first_line = (str(err).strip().splitlines() or [""])[0][:200]
        return {"error": f"MLflow at {uri}: {type(err).__name__}: {first_line}"}
    from vlp.platform.tracking.headline import headline_names

    return {"run_id": run.info.run_id, "status": run.info.status, "metrics": dict(run.data.metrics),
            "headline": headline_names(run.data.tags)}


@contextlib.contextmanager
def _impatient_mlflow():
    """MLflow retries a dead server for minutes by default; a status command should answer in seconds."""
    settings = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _summary(cluster: KfpCluster, run) -> dict:
    return {
        "run_id": run.run_id,
        "name": run.display_name,
        "state": str(run.state or "UNKNOWN"),
        "created": _when(run.created_at),
        "finished": _when(run.finished_at),
        "experiment_id": run.experiment_id,
        "run_key": _run_key(run),
        "error": (run.error.message if run.error is not None and run.error.message else ""),
        "url": cluster.run_url(run.run_id),
    }


def _tasks(run) -> list[dict]:
    details = run.run_details.task_details if run.run_details is not None else None
    tasks = []
    for task in details or []:
        pods = [child.pod_name for child in task.child_tasks or [] if getattr(child, "pod_name", None)]
        tasks.append({
            "name": task.display_name,
            "state": str(task.state or "UNKNOWN"),
            "started": _when(task.start_time),
            "finished": _when(task.end_time),
            "pod": task.pod_name or (pods[0] if pods else ""),
            "error": task.error.message if task.error is not None and task.error.message else "",
        })
    return tasks


def _run_key(run) -> str | None:
    """The run key travels in the `runtime_json` argument (or its compiled-in default)."""
    parameters = (run.runtime_config.parameters or {}) if run.runtime_config is not None else {}
    runtime_json = parameters.get("runtime_json")
    if runtime_json is None and isinstance(run.pipeline_spec, dict):
        spec = run.pipeline_spec.get("pipeline_spec", run.pipeline_spec)
        runtime_json = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}).get("runtime_json", {}).get("defaultValue")
    try:
        return json.loads(runtime_json).get("run_key") or None
    except (TypeError, ValueError, AttributeError):
        return None


def _when(moment) -> str:
    if moment is None or getattr(moment, "year", 1970) <= 1970:
        return ""
    return moment.strftime("%Y-%m-%d %H:%M:%S")
