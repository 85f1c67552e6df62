"""`vlp run FILE`: validate, run the pipeline on this machine, print a summary."""

from __future__ import annotations

import os
from pathlib import Path

import typer


def run(
    experiment: Path = typer.Argument(..., help="Experiment file (YAML)."),
    set_: list[str] = typer.Option([], "--set", help="Override a field: --set train.lr=0.001 (repeatable)."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON document: run_id, status, metrics, model."),
) -> None:
    """Run an experiment end to end on this machine (prepare data → pretrain → evaluate → register)."""
    from vlp.platform.preflight import check_inputs
    from vlp.platform.spec import load_spec

    spec = load_spec(experiment, set_)
    check_inputs(spec)
    os.environ.setdefault("PYTHONSAFEPATH", "1")
    from vlp.cli.output import print_json
    from vlp.pipelines.local_run import run_experiment
    from vlp.platform.profiles import local_runtime

    outcome = run_experiment(spec, local_runtime(), quiet=json_output)
    if json_output:
        print_json(outcome.as_dict())
    else:
        print_summary(spec.name, outcome)
    if outcome.status != "FINISHED":
        raise typer.Exit(1)


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
