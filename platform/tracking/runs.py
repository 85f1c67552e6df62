"""Create, look up and finish MLflow runs; experiments get an artifact location under the state directory
when the tracking store is local, so nothing lands in the current directory."""

from __future__ import annotations

from vlp.platform.state import default_artifact_root, default_tracking_uri

MAX_PARAM_LENGTH = 6000


def client(tracking_uri: str | None = None):
    from mlflow.tracking import MlflowClient

    from vlp.platform.tracking.local_store import wait_for_sqlite_locks

    uri = tracking_uri or default_tracking_uri()
    wait_for_sqlite_locks(uri)
    return MlflowClient(tracking_uri=uri)


def store_exists(tracking_uri: str | None = None) -> bool:
    """False for a local SQLite store that was never created: read-only commands answer "nothing" from that
    instead of creating the database (and printing MLflow's table-creation logs)."""
    from pathlib import Path

    uri = tracking_uri or default_tracking_uri()
    if not uri.startswith("sqlite:///"):
        return True
    return Path(uri[len("sqlite:///"):].split("?", 1)[0]).exists()


def ensure_experiment(name: str, tracking_uri: str | None = None) -> str:
    mlflow_client = client(tracking_uri)
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    uri = tracking_uri or default_tracking_uri()
    artifact_location = f"{default_artifact_root()}/{name}" if uri.startswith(("sqlite:", "file:", "/")) else None
    try:
        return mlflow_client.create_experiment(name, artifact_location=artifact_location)
    except Exception:
        # Another `vlp run` created it between our lookup and create.
        experiment = mlflow_client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def start_run(experiment_name: str, run_name: str, tags: dict[str, str], params: dict[str, str], tracking_uri: str | None = None) -> str:
    from mlflow.entities import Param

    mlflow_client = client(tracking_uri)
    experiment_id = ensure_experiment(experiment_name, tracking_uri)
    run = mlflow_client.create_run(experiment_id, run_name=run_name, tags=tags)
    items = [Param(key, value[:MAX_PARAM_LENGTH]) for key, value in sorted(params.items())]
    for start in range(0, len(items), 100):
        mlflow_client.log_batch(run.info.run_id, params=items[start : start + 100])
    return run.info.run_id


def reopen_run(run_id: str, tracking_uri: str | None = None) -> None:
    """Mark a run RUNNING again for another attempt (a resume or a retried step); the last attempt's error goes."""
    mlflow_client = client(tracking_uri)
    tags = mlflow_client.get_run(run_id).data.tags
    if "vlp.error" in tags:
        mlflow_client.delete_tag(run_id, "vlp.error")
    mlflow_client.set_tag(run_id, "vlp.attempts", str(int(tags.get("vlp.attempts", "1")) + 1))
    mlflow_client.update_run(run_id, status="RUNNING")


def finish_run(run_id: str, status: str = "FINISHED", tracking_uri: str | None = None) -> None:
    client(tracking_uri).set_terminated(run_id, status=status)


def run_metrics(run_id: str, tracking_uri: str | None = None) -> dict[str, float]:
    return dict(client(tracking_uri).get_run(run_id).data.metrics)


def find_run_by_key(run_key: str, tracking_uri: str | None = None) -> str | None:
    """The run that a submission tagged with `vlp.run_key` (None if it never started)."""
    mlflow_client = client(tracking_uri)
    experiment_ids = [experiment.experiment_id for experiment in mlflow_client.search_experiments()]
    if not experiment_ids:
        return None
    runs = mlflow_client.search_runs(experiment_ids, filter_string=f"tags.`vlp.run_key` = '{run_key}'", max_results=1)
    return runs[0].info.run_id if runs else None
