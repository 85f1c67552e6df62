"""How `vlp runs … --profile NAME` prints cluster runs: KFP state beside the MLflow run."""

from __future__ import annotations

import typer

from vlp.cli.output import print_json, print_table


def print_run_list(runs: list[dict], profile_name: str, json_output: bool) -> None:
    if json_output:
        print_json(runs)
        return
    rows = [[run["run_id"], run["name"], run["state"], run["created"], *_mlflow_cells(run.get("mlflow"))] for run in runs]
    print_table(f"runs on {profile_name}", ["KFP run id", "name", "state", "created", "MLflow run", "MLflow status", "headline"], rows)
    if runs and all(run.get("mlflow") is None for run in runs):
        typer.echo("(set mlflow.external_uri in the profile to see each run's MLflow run here)")


def print_run(details: dict, json_output: bool) -> None:
    if json_output:
        print_json(details)
        return
    typer.echo(f"{details['run_id']}  {details['name']}  {details['state']}  created {details['created']}"
               + (f"  finished {details['finished']}" if details["finished"] else ""))
    typer.echo(f"  url      {details['url']}")
    if details["run_key"]:
        typer.echo(f"  run key  {details['run_key']}")
    if details["error"]:
        typer.echo(f"  error    {details['error'].splitlines()[0][:300]}")
    if details.get("tasks"):
        print_table("tasks", ["task", "state", "started", "finished", "pod"],
                    [[t["name"], t["state"], t["started"], t["finished"], t["pod"]] for t in details["tasks"]])
    _print_mlflow(details.get("mlflow"))


def print_state_change(details: dict) -> None:
    """One line per change while `--watch` polls."""
    running = [t["name"] for t in details["tasks"] if t["state"] == "RUNNING"]
    failed = [t["name"] for t in details["tasks"] if t["state"] == "FAILED"]
    parts = [details["state"]]
    if running:
        parts.append(f"running: {', '.join(running)}")
    if failed:
        parts.append(f"failed: {', '.join(failed)}")
    typer.echo(f"{details['run_id']}  " + "  ".join(parts))


def print_logs(details: dict, json_output: bool) -> None:
    if json_output:
        print_json(details)
        return
    print_run({**details, "mlflow": None}, json_output=False)
    typer.echo("Logs: the training step's log carries every worker's output; KFP's API does not serve pod logs, so read them with:")
    for hint in details["log_hints"]:
        typer.echo(f"  {hint}")
    typer.echo(f"  or open {details['url']}")


def _mlflow_cells(mlflow: dict | None) -> list[str]:
    if mlflow is None:
        return ["", "", ""]
    if "error" in mlflow:
        return ["", "unreachable", ""]
    from vlp.platform.tracking.headline import describe_headline

    headline = {name: mlflow["metrics"].get(name) for name in mlflow.get("headline", [])}
    return [mlflow["run_id"] or "", mlflow["status"], describe_headline(headline)]


def _print_mlflow(mlflow: dict | None) -> None:
    if mlflow is None:
        typer.echo("  MLflow   (set mlflow.external_uri in the profile to show the MLflow run)")
    elif "error" in mlflow:
        typer.echo(f"  MLflow   {mlflow['error']}")
    else:
        typer.echo(f"  MLflow   run {mlflow['run_id'] or '-'}  {mlflow['status']}")
        for key, value in sorted(mlflow["metrics"].items()):
            typer.echo(f"    {key:<55} {value:.4f}")
