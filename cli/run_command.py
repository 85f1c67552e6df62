"""`vlp run FILE` (or `vlp run --resume RUN_ID`): validate, run the pipeline on this machine, print a summary."""

from __future__ import annotations

import os
from pathlib import Path

import typer


def run(
    experiment: Path = typer.Argument(None, help="Experiment file (YAML); leave out with --resume."),
    set_: list[str] = typer.Option([], "--set", help="Override a field: --set train.lr=0.001 (repeatable)."),
    resume: str = typer.Option(None, "--resume", metavar="RUN_ID", help="Continue a failed or interrupted run from its latest checkpoint, in the same MLflow run."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON document: run_id, status, metrics, model."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Run in the background, apart from this terminal: print the run id and return; follow it with `vlp runs attach RUN_ID`."),
    wait: bool = typer.Option(False, "--wait", help="With --resume: if another process is still resuming or training the run, wait for it to end instead of exiting 2."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Stream every step's and worker's output (it always goes to the run's log files)."),
) -> None:
    """Run an experiment end to end on this machine (prepare data → pretrain → evaluate → register).

    The training job stops when `vlp run` stops (Ctrl-C, kill, a closed terminal), unless the run is --detach'ed."""
    from vlp.platform.errors import VlpUserError
    from vlp.platform.preflight import check_experiment
    from vlp.platform.spec import load_spec
    from vlp.platform.state import default_storage_root, default_tracking_uri
    from vlp.platform.tracking.uris import refuse_credentials

    tracking_uri = default_tracking_uri()
    refuse_credentials(tracking_uri)
    if wait and resume is None:
        raise VlpUserError("--wait goes with --resume RUN_ID (it waits for another process working on that run)")
    if resume is not None:
        if experiment is not None or set_:
            raise VlpUserError("--resume RUN_ID continues a run with the experiment it started with: give no experiment file or --set")
        from vlp.platform.tracking.resume import plan_resume

        plan = plan_resume(resume, tracking_uri, default_storage_root())
        spec = plan.spec
    elif experiment is None:
        raise VlpUserError("missing EXPERIMENT: give an experiment file (`vlp run experiments/quickstart.yaml`) or --resume RUN_ID")
    else:
        spec = load_spec(experiment, set_)
    check_experiment(spec)
    from vlp.platform.tracking.permissions import check_team_access

    check_team_access(spec, tracking_uri)
    os.environ.setdefault("PYTHONSAFEPATH", "1")
    from vlp.cli.output import print_json
    from vlp.pipelines.local_run import claim_for_resume, run_detached
    from vlp.platform.profiles import local_runtime
    from vlp.platform.tracking.local_store import prepare_tracking_store

    prepare_tracking_store(tracking_uri)
    runtime = local_runtime()
    claim = None
    if resume is not None:
        from vlp.platform.layout import RunLayout

        # The same run key makes the start-run step reopen that run instead of creating one.
        runtime = runtime.model_copy(update={"run_key": plan.run_key})
        claim = claim_for_resume(RunLayout(spec.storage_root or runtime.storage_root, plan.run_id), wait,
                                 announce=lambda line: typer.echo(line, err=True))
    if spec.sweep is not None:
        if detach:
            raise VlpUserError("sweep: a sweep runs in the foreground; drop --detach")
        run_sweep_here(spec, runtime, json_output)
        return
    if detach:
        print_detached(run_detached(spec, runtime, claim), json_output)
        return
    if claim is not None:
        claim.keep_alive(lambda lost: typer.echo(f"warning: {lost}", err=True))
    try:
        outcome, step_logs = run_with_console(spec, runtime, json_output, verbose)
    finally:
        if claim is not None:
            claim.release()
    if json_output:
        print_json(outcome.as_dict())
    else:
        print_summary(spec.name, outcome, spec=spec, step_logs=step_logs, tracking_uri=tracking_uri)
    if outcome.status != "FINISHED":
        raise typer.Exit(1)


def run_with_console(spec, runtime, json_output: bool, verbose: bool):
    """Runs the pipeline with its steps' output in log files, showing the steps and training as they go (nothing
    with --json, where stdout carries only the document; -v streams every line, to stderr with --json)."""
    import sys

    from vlp.cli.run_console import RunConsole, TrainingWatcher
    from vlp.pipelines.local_run import log_dir, run_experiment
    from vlp.pipelines.step_table import steps_of
    from vlp.platform.backends.step_logs import StepLogs

    steps = steps_of(spec.workload)
    directory = log_dir(runtime.run_key)
    if json_output:
        step_logs = StepLogs(directory, echo=sys.stderr if verbose else None)
        return run_experiment(spec, runtime, quiet=True, step_logs=step_logs), step_logs
    watcher = TrainingWatcher(runtime.tracking_uri, runtime.run_key, spec.train.max_steps)
    console = RunConsole([step.name for step in steps], directory, watcher, {step.name for step in steps if step.kind == "train"}, verbose=verbose)
    with console:
        outcome = run_experiment(spec, runtime, step_logs=console.step_logs)
    return outcome, console.step_logs


def run_sweep_here(spec, runtime, json_output: bool) -> None:
    """The sweep's trials, one line each as they end, then the table (or one JSON document); exit 1 unless every
    trial finished."""
    from vlp.cli.output import print_json, print_table
    from vlp.pipelines.local_run import run_sweep

    def announce(row: dict, total: int) -> None:
        values = " ".join(f"{path}={value}" for path, value in row["values"].items())
        score = "" if row["value"] is None else f"  {spec.sweep.metric} {row['value']:.4f}"
        typer.echo(f"trial {row['number']}/{total} ({values}): {row['status']}{score}  run {row['run_id'] or '-'}  logs {row['logs'] or '-'}",
                   err=json_output)

    outcome = run_sweep(spec, runtime, on_trial=announce)
    if json_output:
        print_json(outcome.as_dict())
    else:
        paths = list(spec.sweep.parameters)
        rows = [[f"{row['number']}{' *' if row['run_id'] == outcome.best_run_id else ''}", *(row["values"][path] for path in paths), row["status"],
                 "" if row["value"] is None else f"{row['value']:.4f}", row["run_id"] or ""] for row in outcome.trials]
        print_table(f"sweep {spec.name} ({spec.sweep.goal} {spec.sweep.metric}; * best)", ["trial", *paths, "status", spec.sweep.metric, "run id"], rows)
        typer.echo(f"parent run {outcome.parent_run_id}; best run {outcome.best_run_id or '-'}")
    if any(row["status"] != "FINISHED" for row in outcome.trials):
        raise typer.Exit(1)


def print_detached(detached, json_output: bool) -> None:
    from vlp.cli.output import print_json

    if detached.run_id is None:
        reason = f"exited {detached.exit_code}" if detached.exit_code is not None else "has not opened its run yet"
        typer.echo(f"the background run {reason}; its log: {detached.log}", err=True)
        raise typer.Exit(1)
    if json_output:
        print_json({"run_id": detached.run_id, "status": "RUNNING", "detached": {"pid": detached.pid, "log": detached.log}})
        return
    typer.echo(f"run {detached.run_id} goes on in the background (pid {detached.pid}, log {detached.log})")
    typer.echo(f"  follow it: vlp runs attach {detached.run_id}")


def print_summary(name: str, outcome, spec=None, step_logs=None, tracking_uri: str | None = None) -> None:
    """The run's result: metrics (headline first), model version, gate results, where to look in the UI, the logs;
    for a failed run, the failing step's last lines."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    colour = "green" if outcome.status == "FINISHED" else "red"
    console.print(f"\n[bold]{escape(name)}[/bold]  run [cyan]{outcome.run_id}[/cyan]  [{colour}]{outcome.status}[/{colour}]")
    if outcome.error:
        console.print(f"  error: {escape(outcome.error.splitlines()[0][:300])}")
    headline = spec.headline_metrics() if spec is not None else ()
    # Breakdowns (per class, per question kind, per domain: `task/dataset/key/part`) stay in MLflow and `--json`.
    overall = sorted(key for key in outcome.metrics if key not in headline and key.count("/") <= 2)
    ordered = [key for key in headline if key in outcome.metrics] + overall
    for key in ordered:
        console.print(f"  {'*' if key in headline else ' '} {key:<55} {outcome.metrics[key]:.4f}")
    if len(outcome.metrics) > len(ordered):
        console.print(f"    ({len(outcome.metrics) - len(ordered)} more per class, kind or domain: in the MLflow run and `--json`)")
    if spec is not None and spec.registration.gates and outcome.metrics:
        from vlp.platform.registry.gates import check_gates

        for result in check_gates(list(spec.registration.gates), outcome.metrics):
            console.print(f"  gate {escape(result.describe())}")
    if outcome.model:
        console.print(f"  model: {outcome.model['name']} version {outcome.model['version']} (alias @candidate)")
        console.print(f"  promote: vlp promote {outcome.model['name']} {outcome.model['version']} --alias champion")
    if outcome.run_id and outcome.experiment_id:
        console.print(f"  browse: {run_link(tracking_uri, outcome.experiment_id, outcome.run_id)}")
    if step_logs is not None:
        from vlp.cli.run_console import failure_report

        for line in failure_report(step_logs):
            console.print(escape(line))
        console.print(f"  logs: {step_logs.directory}")


def run_link(tracking_uri: str | None, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI: on the tracking server, or under `vlp ui` for the local store."""
    fragment = f"#/experiments/{experiment_id}/runs/{run_id}"
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        from vlp.platform.tracking.uris import redacted

        return f"{redacted(tracking_uri).rstrip('/')}/{fragment}"
    return f"vlp ui, then http://127.0.0.1:5000/{fragment}"
