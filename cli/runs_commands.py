"""`vlp runs …`: list and inspect runs recorded in MLflow."""

from __future__ import annotations

import typer

app = typer.Typer(help="List and inspect runs.", no_args_is_help=True)

SUMMARY_METRICS = ("zeroshot/shapes/acc1", "retrieval/shapes/image_retrieval_recall_at_1")


@app.command("list")
def list_runs(
    experiment: str = typer.Option(None, "--experiment", "-e", help="Only this experiment."),
    limit: int = typer.Option(20, "--limit", min=1, help="At most this many runs, newest first."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Recent runs with status and headline metrics."""
    from vlp.cli.output import print_json, print_table
    from vlp.platform.tracking.queries import recent_runs

    runs = recent_runs(experiment, limit)
    if json_output:
        print_json(runs)
        return
    rows = [[r["run_id"], r["experiment"], r["status"], r["started"], *(_fmt(r["metrics"].get(m)) for m in SUMMARY_METRICS)] for r in runs]
    print_table("runs", ["run id", "experiment", "status", "started", "zs acc1", "img R@1"], rows)


@app.command("show")
def show_run(
    run_id: str = typer.Argument(..., help="MLflow run id."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """One run: status, params, metrics, tags and artifacts."""
    from vlp.cli.output import print_json, print_table
    from vlp.platform.tracking.queries import run_details

    details = run_details(run_id)
    if json_output:
        print_json(details)
        return
    typer.echo(f"{details['run_id']}  {details['experiment']}  {details['status']}  started {details['started']}")
    print_table("metrics", ["metric", "value"], [[k, _fmt(v)] for k, v in sorted(details["metrics"].items())])
    print_table("params", ["param", "value"], [[k, v] for k, v in sorted(details["params"].items())])


def _fmt(value) -> str:
    return "" if value is None else f"{value:.4f}"
