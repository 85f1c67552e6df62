"""First step: open the MLflow run that every later step and the training workers log into."""

from __future__ import annotations

import json

from vlp.pipelines.steps.context import decode, storage_root
from vlp.platform.layout import RunLayout
from vlp.platform.storage import open_storage
from vlp.platform.tracking.headline import headline_tag
from vlp.platform.tracking.story import run_description
from vlp.platform.tracking.sweeps import TRIAL_TAG
from vlp.platform.tracking.runs import ensure_experiment, find_run_by_key, reopen_run, start_run


def run(spec_json: str, runtime_json: str) -> str:
    spec, runtime = decode(spec_json, runtime_json)
    _join_team_experiment(spec, runtime.tracking_uri)
    tags = {
        "vlp.team": spec.team,
        "vlp.workload": spec.workload,
        "vlp.spec_hash": spec.spec_hash(),
        "vlp.run_key": runtime.run_key,
        "vlp.scheduler": runtime.scheduler,
        "mlflow.source.git.commit": runtime.git_commit,
        "mlflow.source.name": f"vlp run {spec.name}" if runtime.scheduler == "local_cwd" else f"vlp submit {spec.name}",
        "mlflow.source.type": "LOCAL" if runtime.scheduler == "local_cwd" else "JOB",
        "mlflow.note.content": run_description(spec),
        **headline_tag(spec.headline_metrics()),
    }
    run_name = f"{spec.name}-{runtime.run_key[:8]}"
    if runtime.sweep_trial is not None:
        # One trial of a sweep: a child of the sweep's parent run (the MLflow UI nests it there).
        tags.update({"mlflow.parentRunId": runtime.sweep_trial.parent_run_id, TRIAL_TAG: str(runtime.sweep_trial.number)})
        run_name = f"{spec.name}-trial-{runtime.sweep_trial.number}"
    user = _user()
    if user:
        tags["mlflow.user"] = user
    if runtime.workspace is not None:
        # Enough to reproduce the run from its record: the exact code it ran, and whether that was HEAD.
        tags.update({
            "vlp.workspace.sha256": runtime.workspace.content_sha256,
            "vlp.workspace.uri": runtime.workspace.uri,
            "vlp.git.dirty": str(runtime.workspace.dirty).lower(),
        })
    run_id = find_run_by_key(runtime.run_key, runtime.tracking_uri)
    if run_id is not None:
        # `vlp run --resume` (or a retried step): continue the run this submission opened; training resumes from its checkpoint.
        reopen_run(run_id, runtime.tracking_uri)
    else:
        run_id = start_run(spec.name, run_name, tags, spec.flat_params(), runtime.tracking_uri)
    layout = RunLayout(storage_root(spec, runtime), run_id)
    open_storage(layout.spec).write_bytes(layout.spec, json.dumps(json.loads(spec_json), indent=2).encode())
    return run_id


def _user() -> str:
    import getpass

    from vlp.platform.teams import current_user

    try:
        return current_user() or getpass.getuser()
    except (KeyError, OSError):
        return ""


def _join_team_experiment(spec, tracking_uri: str) -> None:
    """Where MLflow enforces permissions: the spec's team must be the user's, and the experiment that team's
    (whoever creates it shares it with the teams)."""
    from vlp.platform.tracking.permissions import access_for, require_member, share_experiment

    access = access_for(tracking_uri)
    if access is not None:
        require_member(access, spec.team)
        share_experiment(access, ensure_experiment(spec.name, tracking_uri), spec.team)
