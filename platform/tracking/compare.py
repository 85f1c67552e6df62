"""`vlp runs compare`: runs side by side from MLflow: the params that differ, every metric's latest value, the
curves over steps drawn as one figure, and the MLflow UI's own compare page."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from vlp.platform.errors import VlpUserError
from vlp.platform.tracking.runs import client, store_exists

CURVE_PREFIXES = ("train/",)
MAX_CURVES = 6


def compare_runs(run_ids: list[str], tracking_uri: str | None = None, plot_path: Path | None = None) -> dict:
    from mlflow.exceptions import MlflowException

    if len(run_ids) < 2:
        raise VlpUserError("runs compare: give two or more run ids (see `vlp runs list`)")
    if len(set(run_ids)) != len(run_ids):
        raise VlpUserError("runs compare: a run id is given twice")
    if not store_exists(tracking_uri):
        raise VlpUserError(f"runs compare: run {run_ids[0]!r} does not exist (no runs yet on this machine)")
    mlflow_client = client(tracking_uri)
    runs = []
    for run_id in run_ids:
        try:
            runs.append(mlflow_client.get_run(run_id))
        except MlflowException:
            raise VlpUserError(f"runs compare: run {run_id!r} does not exist (see `vlp runs list`)") from None
    param_names = sorted({name for run in runs for name in run.data.params})
    differing = {name: {run.info.run_id: run.data.params.get(name) for run in runs} for name in param_names
                 if len({run.data.params.get(name) for run in runs}) > 1}
    metric_names = sorted({name for run in runs for name in run.data.metrics})
    metrics = {name: {run.info.run_id: run.data.metrics.get(name) for run in runs} for name in metric_names}
    document = {
        "runs": [{"run_id": run.info.run_id, "name": run.info.run_name, "experiment_id": run.info.experiment_id,
                  "status": run.info.status} for run in runs],
        "params": differing,
        "metrics": metrics,
        "ui": compare_link(tracking_uri, runs),
    }
    curves = [name for name in metric_names if name.startswith(CURVE_PREFIXES)][:MAX_CURVES]
    if plot_path is not None and curves:
        histories = {name: {run.info.run_id: mlflow_client.get_metric_history(run.info.run_id, name) for run in runs} for name in curves}
        document["plot"] = str(draw_curves(histories, {run.info.run_id: run.info.run_name or run.info.run_id[:8] for run in runs}, plot_path))
    return document


def sweep_trials(parent_run_id: str, tracking_uri: str | None = None) -> list[str]:
    """The run ids of a sweep's trials (its parent's child runs), in trial order."""
    from mlflow.exceptions import MlflowException

    if not store_exists(tracking_uri):
        raise VlpUserError(f"runs compare --sweep {parent_run_id}: no such run (no runs yet on this machine)")
    mlflow_client = client(tracking_uri)
    try:
        parent = mlflow_client.get_run(parent_run_id)
    except MlflowException:
        raise VlpUserError(f"runs compare --sweep {parent_run_id}: no such run (see `vlp runs list`)") from None
    if parent.data.tags.get("vlp.sweep") != "parent":
        raise VlpUserError(f"runs compare --sweep {parent_run_id}: not a sweep's parent run (`vlp run` of an experiment with a sweep: section prints it)")
    children = mlflow_client.search_runs([parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'", max_results=10_000)
    return [run.info.run_id for run in sorted(children, key=lambda run: int(run.data.tags.get("vlp.sweep.trial", "0")))]


def compare_link(tracking_uri: str | None, runs) -> str:
    """MLflow UI's compare page for these runs (served by `vlp ui` for the local store)."""
    from vlp.platform.state import default_tracking_uri
    from vlp.platform.tracking.uris import redacted

    uri = tracking_uri or default_tracking_uri()
    base = redacted(uri).rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    run_list = quote(json.dumps([run.info.run_id for run in runs], separators=(",", ":")))
    experiments = quote(json.dumps(sorted({run.info.experiment_id for run in runs}), separators=(",", ":")))
    return f"{base}/#/compare-runs?runs={run_list}&experiments={experiments}"


def draw_curves(histories: dict[str, dict[str, list]], labels: dict[str, str], path: Path) -> Path:
    """One PNG: a panel per metric, a line per run over training steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(histories), figsize=(4.5 * len(histories), 3.5), squeeze=False)
    for axis, (name, by_run) in zip(axes[0], histories.items()):
        for run_id, points in by_run.items():
            ordered = sorted(points, key=lambda point: point.step)
            axis.plot([point.step for point in ordered], [point.value for point in ordered], label=labels[run_id])
        axis.set_title(name)
        axis.set_xlabel("step")
    axes[0][0].legend(fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
