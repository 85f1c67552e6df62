"""Read runs back from MLflow as plain dicts (for `vlp runs`)."""

from __future__ import annotations

import datetime

from vlp.platform.errors import VlpUserError
from vlp.platform.tracking.headline import headline_values
from vlp.platform.tracking.runs import client, store_exists


def _summary(run_id: str, experiment: str, status: str, start_time_ms: int, metrics: dict[str, float], tags: dict[str, str]) -> dict:
    return {
        "run_id": run_id,
        "experiment": experiment,
        "status": status,
        "started": datetime.datetime.fromtimestamp(start_time_ms / 1000).strftime("%Y-%m-%d %H:%M:%S"),
        "metrics": metrics,
        "headline": headline_values(tags, metrics),
        "tags": {key: value for key, value in tags.items() if key.startswith("vlp.")},
    }


def _client_summary(run, experiment_names: dict[str, str]) -> dict:
    return _summary(run.info.run_id, experiment_names.get(run.info.experiment_id, run.info.experiment_id), run.info.status,
                    run.info.start_time, dict(run.data.metrics), dict(run.data.tags))


def _rest_summary(run: dict, experiment_names: dict[str, str]) -> dict:
    info, data = run["info"], run.get("data", {})
    metrics = {metric["key"]: float(metric["value"]) for metric in data.get("metrics", [])}
    tags = {tag["key"]: tag["value"] for tag in data.get("tags", [])}
    return _summary(info["run_id"], experiment_names.get(info["experiment_id"], info["experiment_id"]), info["status"],
                    int(info["start_time"]), metrics, tags)


def recent_runs(experiment: str | None = None, limit: int = 20, tracking_uri: str | None = None) -> list[dict]:
    """The newest runs, newest first. A tracking server, or a `vlp ui` serving the local store, is asked through its
    REST API (MLflow's client library takes longer to import than the answer takes); otherwise the local store through
    MLflow's client."""
    from vlp.platform.state import default_tracking_uri
    from vlp.platform.tracking import rest

    uri = tracking_uri or default_tracking_uri()
    if not rest.is_server(uri) and not store_exists(uri):
        if experiment is not None:
            raise VlpUserError(f"--experiment {experiment!r}: no such experiment (no runs yet on this machine)")
        return []
    served = rest_url(uri)
    if served is not None:
        experiments = {e["experiment_id"]: e["name"] for e in rest.search_experiments(served)}
        ids = _experiment_ids(experiments, experiment)
        return [_rest_summary(run, experiments) for run in rest.search_runs(served, ids, limit)] if ids else []
    mlflow_client = client(uri)
    experiments = {e.experiment_id: e.name for e in mlflow_client.search_experiments()}
    ids = _experiment_ids(experiments, experiment)
    if not ids:
        return []
    runs = mlflow_client.search_runs(ids, max_results=limit, order_by=["attributes.start_time DESC"])
    return [_client_summary(run, experiments) for run in runs]


def rest_url(tracking_uri: str) -> str | None:
    """Where to ask MLflow's REST API for `tracking_uri`: the tracking server itself, or a `vlp ui` serving the local
    store (None: open the store with MLflow's client)."""
    from vlp.platform.tracking import rest
    from vlp.platform.tracking.ui_server import serving_url

    return tracking_uri if rest.is_server(tracking_uri) else serving_url(tracking_uri)


def _experiment_ids(names: dict[str, str], experiment: str | None) -> list[str]:
    ids = [experiment_id for experiment_id, name in names.items() if experiment is None or name == experiment]
    if experiment is not None and not ids:
        raise VlpUserError(f"--experiment {experiment!r}: no such experiment (see `vlp runs list`)")
    return ids


def run_details(run_id: str) -> dict:
    from mlflow.exceptions import MlflowException

    if not store_exists():
        raise VlpUserError(f"run {run_id!r} does not exist (no runs yet on this machine; see `vlp runs list`)")
    mlflow_client = client()
    try:
        run = mlflow_client.get_run(run_id)
    except MlflowException:
        raise VlpUserError(f"run {run_id!r} does not exist (see `vlp runs list`)") from None
    experiment = mlflow_client.get_experiment(run.info.experiment_id)
    details = _client_summary(run, {experiment.experiment_id: experiment.name})
    details["params"] = dict(run.data.params)
    details["artifacts"] = [item.path for item in mlflow_client.list_artifacts(run_id)]
    details["artifact_uri"] = run.info.artifact_uri
    return details
