"""Read runs back from MLflow as plain dicts (for `vlp runs`)."""

from __future__ import annotations

import datetime

from vlp.platform.errors import VlpUserError
from vlp.platform.tracking.headline import headline_values
from vlp.platform.tracking.runs import client, store_exists


def _started(run) -> str:
    return datetime.datetime.fromtimestamp(run.info.start_time / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _summary(run, experiment_names: dict[str, str]) -> dict:
    return {
        "run_id": run.info.run_id,
        "experiment": experiment_names.get(run.info.experiment_id, run.info.experiment_id),
        "status": run.info.status,
        "started": _started(run),
        "metrics": dict(run.data.metrics),
        "headline": headline_values(run.data.tags, run.data.metrics),
        "tags": {key: value for key, value in run.data.tags.items() if key.startswith("vlp.")},
    }


def recent_runs(experiment: str | None = None, limit: int = 20) -> list[dict]:
    if not store_exists():
        if experiment is not None:
            raise VlpUserError(f"--experiment {experiment!r}: no such experiment (no runs yet on this machine)")
        return []
    mlflow_client = client()
    experiments = mlflow_client.search_experiments()
    names = {e.experiment_id: e.name for e in experiments}
    ids = [e.experiment_id for e in experiments if experiment is None or e.name == experiment]
    if experiment is not None and not ids:
        raise VlpUserError(f"--experiment {experiment!r}: no such experiment (see `vlp runs list`)")
    if not ids:
        return []
    runs = mlflow_client.search_runs(ids, max_results=limit, order_by=["attributes.start_time DESC"])
    return [_summary(run, names) for run in runs]


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
    details = _summary(run, {experiment.experiment_id: experiment.name})
    details["params"] = dict(run.data.params)
    details["artifacts"] = [item.path for item in mlflow_client.list_artifacts(run_id)]
    details["artifact_uri"] = run.info.artifact_uri
    return details
