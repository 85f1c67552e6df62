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
) -> None:
    """Run an experiment end to end on this machine (prepare data → pretrain → evaluate → register)."""
    from vlp.platform.errors import VlpUserError
    from vlp.platform.preflight import check_inputs
    from vlp.platform.spec import load_spec
    from vlp.platform.state import default_storage_root, default_tracking_uri
    from vlp.platform.tracking.uris import refuse_credentials

    tracking_uri = default_tracking_uri()
    refuse_credentials(tracking_uri)
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
    check_inputs(spec)
    check_model(spec.model)
    os.environ.setdefault("PYTHONSAFEPATH", "1")
    from vlp.cli.output import print_json
    from vlp.pipelines.local_run import run_experiment
    from vlp.platform.profiles import local_runtime
    from vlp.platform.tracking.local_store import prepare_tracking_store

    prepare_tracking_store(tracking_uri)
    runtime = local_runtime()
    if resume is not None:
        # The same run key makes the start-run step reopen that run instead of creating one.
        runtime = runtime.model_copy(update={"run_key": plan.run_key})
    outcome = run_experiment(spec, runtime, quiet=json_output)
    if json_output:
        print_json(outcome.as_dict())
    else:
        print_summary(spec.name, outcome)
    if outcome.status != "FINISHED":
        raise typer.Exit(1)


def check_model(section) -> None:
    """An unknown preset or missing weights would otherwise fail inside the training job, after the run opened."""
    from vlp.platform.errors import SpecError
    from vlp.platform.storage import open_storage
    from vlp.workloads.models.catalog import load_model_cfg

    if section.init_from is None:
        load_model_cfg(section.preset)
    elif isinstance(section.init_from, str) and not section.init_from.startswith("models:/"):
        if not open_storage(section.init_from).exists(section.init_from):
            raise SpecError(f"model.init_from: no checkpoint at {section.init_from}; check the path (or use models:/NAME@ALIAS)")


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
