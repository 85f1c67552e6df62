"""A sweep in MLflow: one parent run, one child run per trial (`mlflow.parentRunId`), the best child tagged
`vlp.sweep.best`, the trials' table logged on the parent (`sweep/table.md`) with the metric per trial as its steps.

The sweep pipeline's steps (vlp.pipelines.steps.sweep) write this record; `vlp run` reads the same record back,
so a sweep on the cluster and one on this machine end in the same runs, tags and table."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass

from vlp.platform.tracking.runs import client, find_run_by_key, finish_run, start_run

PARENT_TAG = "vlp.sweep"
TRIAL_TAG = "vlp.sweep.trial"
BEST_TAG = "vlp.sweep.best"
BEST_RUN_TAG = "vlp.sweep.best_run"
TABLE_ARTIFACT = "sweep/table.md"


@dataclass
class SweepOutcome:
    parent_run_id: str | None
    metric: str
    goal: str
    trials: list[dict]
    """Per trial: number, values, run_id, status, value (the metric; None when not logged), logs."""
    best_run_id: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def trial_run_key(sweep_run_key: str, number: int) -> str:
    """Each trial's run key, derived from the sweep's: the same on every attempt of its steps, different per trial."""
    return uuid.uuid5(uuid.UUID(hex=uuid.uuid5(uuid.NAMESPACE_OID, sweep_run_key).hex), str(number)).hex


def open_parent_run(spec, runtime) -> str:
    """The sweep's parent run (found again by the sweep's run key when a step is retried)."""
    from vlp.platform.tracking.story import run_description

    existing = find_run_by_key(runtime.run_key, runtime.tracking_uri)
    if existing is not None:
        return existing
    sweep = spec.sweep
    tags = {PARENT_TAG: "parent", "vlp.team": spec.team, "vlp.workload": spec.workload, "vlp.spec_hash": spec.spec_hash(),
            "vlp.run_key": runtime.run_key, "vlp.scheduler": runtime.scheduler, "mlflow.note.content": run_description(spec),
            "mlflow.source.name": f"vlp {'run' if runtime.scheduler == 'local_cwd' else 'submit'} {spec.name}",
            "mlflow.source.git.commit": runtime.git_commit}
    params = {"sweep.method": sweep.method, "sweep.metric": sweep.metric, "sweep.goal": sweep.goal,
              "sweep.trials": str(len(sweep.assignments())), "sweep.parallelism": str(sweep.parallelism),
              **{f"sweep.parameters.{path}": json.dumps(d.model_dump(exclude_none=True)) for path, d in sweep.parameters.items()}}
    return start_run(spec.name, f"{spec.name}-sweep-{runtime.run_key[:8]}", tags, params, runtime.tracking_uri)


def read_sweep(spec, runtime, logs_of=None) -> SweepOutcome:
    """The sweep's trials as MLflow has them: every trial of `spec.sweep`, with its child run where one was opened
    (a trial that failed before opening its run is FAILED with no run). `logs_of(number)`: the trial's log folder."""
    sweep = spec.sweep
    assignments = sweep.assignments()
    parent = find_run_by_key(runtime.run_key, runtime.tracking_uri)
    children = {}
    if parent is not None:
        mlflow_client = client(runtime.tracking_uri)
        experiment_id = mlflow_client.get_run(parent).info.experiment_id
        for run in mlflow_client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'", max_results=10_000):
            if TRIAL_TAG in run.data.tags:
                children[int(run.data.tags[TRIAL_TAG])] = run
    rows = []
    for number, values in enumerate(assignments, 1):
        run = children.get(number)
        rows.append({"number": number, "values": values, "run_id": run.info.run_id if run else None,
                     "status": run.info.status if run else "FAILED", "value": run.data.metrics.get(sweep.metric) if run else None,
                     "logs": logs_of(number) if logs_of else None})
    best = best_trial(rows, sweep.goal)
    return SweepOutcome(parent, sweep.metric, sweep.goal, rows, best["run_id"] if best else None)


def best_trial(rows: list[dict], goal: str) -> dict | None:
    scored = [row for row in rows if row["value"] is not None and row["status"] == "FINISHED"]
    if not scored:
        return None
    return (max if goal == "maximize" else min)(scored, key=lambda row: row["value"])


def close_sweep(spec, runtime, pipeline_state: str) -> SweepOutcome:
    """The sweep's end (its pipeline's exit handler): a trial run left RUNNING is FAILED, the best child is tagged,
    the metric per trial and the table go on the parent, and the parent is FINISHED only if every trial is."""
    outcome = read_sweep(spec, runtime)
    if outcome.parent_run_id is None:
        return outcome
    mlflow_client = client(runtime.tracking_uri)
    parent = outcome.parent_run_id
    for row in outcome.trials:
        if row["run_id"] and row["status"] == "RUNNING":
            finish_run(row["run_id"], "FAILED", runtime.tracking_uri)
            row["status"] = "FAILED"
        if row["value"] is not None:
            mlflow_client.log_metric(parent, spec.sweep.metric, row["value"], step=row["number"])
    best = best_trial(outcome.trials, spec.sweep.goal)
    outcome.best_run_id = best["run_id"] if best else None
    if best is not None:
        mlflow_client.set_tag(best["run_id"], BEST_TAG, "true")
        mlflow_client.set_tag(parent, BEST_RUN_TAG, best["run_id"])
        mlflow_client.log_metric(parent, f"best/{spec.sweep.metric}", best["value"])
    mlflow_client.log_text(parent, sweep_table(outcome.trials, spec.sweep.metric, best), TABLE_ARTIFACT)
    finished = pipeline_state == "SUCCEEDED" and all(row["status"] == "FINISHED" for row in outcome.trials)
    finish_run(parent, "FINISHED" if finished else "FAILED", runtime.tracking_uri)
    return outcome


def sweep_table(rows: list[dict], metric: str, best: dict | None) -> str:
    """Markdown: one row per trial, its values, status and metric; the best one marked."""
    paths = list(rows[0]["values"]) if rows else []
    lines = [f"| trial | {' | '.join(paths)} | status | {metric} | run |", "|" + "---|" * (len(paths) + 4)]
    for row in rows:
        value = "-" if row["value"] is None else f"{row['value']:.4f}"
        mark = " (best)" if best is not None and row is best else ""
        lines.append(f"| {row['number']}{mark} | {' | '.join(str(row['values'][path]) for path in paths)} | {row['status']} | {value} | {row['run_id'] or '-'} |")
    return "\n".join(lines) + "\n"
