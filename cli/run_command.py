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
    from vlp.pipelines.local_run import claim_for_resume, run_detached, run_experiment
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
    if detach:
        print_detached(run_detached(spec, runtime, claim), json_output)
        return
    if claim is not None:
        claim.keep_alive(lambda lost: typer.echo(f"warning: {lost}", err=True))
    try:
        outcome = run_experiment(spec, runtime, quiet=json_output)
    finally:
        if claim is not None:
            claim.release()
    if json_output:
        print_json(outcome.as_dict())
    else:
        print_summary(spec.name, outcome)
    if outcome.status != "FINISHED":
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


def print_summary(name: str, outcome) -> None:
    from rich.console import Console

    console = Console()
    colour = "green" if outcome.status == "FINISHED" else "red"
    console.print(f"\n[bold]{name}[/bold]  run [cyan]{outcome.run_id}[/cyan]  [{colour}]{outcome.status}[/{colour}]")
    if outcome.error:
        console.print(f"  error: {outcome.error.splitlines()[0][:300]}")
    for key, value in sorted(outcome.metrics.items()):
        console.print(f"  {key:<55} {value:.4f}")
    if outcome.model:
        console.print(f"  model: {outcome.model['name']} version {outcome.model['version']} (alias @candidate)")
        console.print(f"  promote: vlp promote {outcome.model['name']} {outcome.model['version']} --alias champion")
    console.print("  browse: vlp ui")
