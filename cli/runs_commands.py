"""`vlp runs …`: list and inspect runs recorded in MLflow; with `--profile NAME`, runs on that cluster
(KFP state beside the MLflow run), their logs, and cancelling them."""

from __future__ import annotations

import typer

app = typer.Typer(help="List and inspect runs: local ones, or a cluster's with --profile NAME.", no_args_is_help=True)

PROFILE_HELP = "Cluster profile: show KFP runs there (default: `local`, the MLflow store on this machine)."


@app.command("list")
def list_runs(
    experiment: str = typer.Option(None, "--experiment", "-e", help="Only this experiment."),
    limit: int = typer.Option(20, "--limit", min=1, help="At most this many runs, newest first."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
    profile: str = typer.Option("local", "--profile", "-p", envvar="VLP_PROFILE", help=PROFILE_HELP),
) -> None:
    """Recent runs with status and headline metrics."""
    cluster = _cluster_profile(profile)
    if cluster is not None:
        from vlp.cli.cluster_runs_view import print_run_list
        from vlp.platform.cluster_runs import list_cluster_runs

        print_run_list(list_cluster_runs(cluster, limit, experiment), cluster.name, json_output)
        return
    from vlp.cli.output import print_json, print_table
    from vlp.platform.tracking.headline import describe_headline
    from vlp.platform.tracking.queries import recent_runs

    runs = recent_runs(experiment, limit)
    if json_output:
        print_json(runs)
        return
    rows = [[r["run_id"], r["experiment"], r["status"], r["started"], describe_headline(r["headline"])] for r in runs]
    print_table("runs", ["run id", "experiment", "status", "started", "headline"], rows)


@app.command("show")
def show_run(
    run_id: str = typer.Argument(..., help="MLflow run id; with --profile, the KFP run id `vlp submit` printed."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
    profile: str = typer.Option("local", "--profile", "-p", envvar="VLP_PROFILE", help=PROFILE_HELP),
    watch: bool = typer.Option(False, "--watch", "-w", help="With --profile: print each state change until the run ends."),
    interval: float = typer.Option(10.0, "--interval", min=0.01, help="Seconds between polls with --watch."),
) -> None:
    """One run: status, params, metrics, tags and artifacts; on a cluster, KFP and task states beside the MLflow run."""
    cluster = _cluster_profile(profile)
    if cluster is not None:
        from vlp.cli.cluster_runs_view import print_run, print_state_change
        from vlp.platform.cluster_runs import show_cluster_run, watch_cluster_run

        if watch:
            details = watch_cluster_run(cluster, run_id, print_state_change, interval)
            print_run(details, json_output)
            if details["state"] != "SUCCEEDED":
                raise typer.Exit(1)
        else:
            print_run(show_cluster_run(cluster, run_id), json_output)
        return
    if watch:
        raise _needs_cluster("--watch", "local runs finish before `vlp run` returns")
    from vlp.cli.output import print_json, print_table
    from vlp.platform.tracking.queries import run_details

    details = run_details(run_id)
    if json_output:
        print_json(details)
        return
    typer.echo(f"{details['run_id']}  {details['experiment']}  {details['status']}  started {details['started']}")
    print_table("metrics", ["metric", "value"], [[k, _fmt(v)] for k, v in sorted(details["metrics"].items())])
    print_table("params", ["param", "value"], [[k, v] for k, v in sorted(details["params"].items())])


@app.command("compare")
def compare(
    run_ids: list[str] = typer.Argument(None, metavar="RUN...", help="Two or more MLflow run ids."),
    sweep: str = typer.Option(None, "--sweep", metavar="RUN", help="Compare the trials of this sweep (its parent run id)."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
    plot: str = typer.Option(None, "--plot", help="Where to write the curves (PNG); default: under the state directory."),
) -> None:
    """Runs side by side: params that differ, metrics, training curves as one PNG, and the MLflow UI compare link."""
    import hashlib
    from pathlib import Path

    from vlp.cli.output import print_json, print_table
    from vlp.platform.state import vlp_home
    from vlp.platform.tracking.compare import compare_runs, sweep_trials

    if sweep is not None:
        if run_ids:
            from vlp.platform.errors import VlpUserError

            raise VlpUserError("runs compare: give run ids or --sweep RUN, not both")
        run_ids = sweep_trials(sweep)
    run_ids = list(run_ids or [])
    default_plot = vlp_home() / "compare" / f"{hashlib.sha256(' '.join(run_ids).encode()).hexdigest()[:12]}.png"
    document = compare_runs(run_ids, plot_path=Path(plot) if plot else default_plot)
    if json_output:
        print_json(document)
        return
    columns = [run["name"] or run["run_id"][:8] for run in document["runs"]]
    ids = [run["run_id"] for run in document["runs"]]
    print_table("params that differ", ["param", *columns], [[name, *(values[i] for i in ids)] for name, values in document["params"].items()])
    print_table("metrics", ["metric", *columns], [[name, *(_fmt(values[i]) for i in ids)] for name, values in document["metrics"].items()])
    if "plot" in document:
        typer.echo(f"curves: {document['plot']}")
    typer.echo(f"compare in the UI: {document['ui']}")


@app.command("attach")
def attach_run(
    run_id: str = typer.Argument(..., help="MLflow run id that `vlp run --detach` printed."),
    json_output: bool = typer.Option(False, "--json", help="At the end, print one JSON document as `vlp run --json` does."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print the run's whole output from the start instead of its steps and training bar."),
) -> None:
    """Follow a run started with `vlp run --detach` as `vlp run` shows it (its steps, the training bar), until it ends,
    then its summary (exit 1 if it did not finish). Ctrl-C stops following; the run goes on in the background."""
    import sys

    from vlp.cli.output import print_json
    from vlp.cli.run_command import print_summary
    from vlp.pipelines.local_run import find_detached, follow_detached

    from vlp.cli.run_console import attached_console, replay_step_states
    from vlp.platform.backends.step_logs import StepLogs

    attached = find_detached(run_id)
    spec = attached.spec()
    try:
        if verbose or json_output:
            name, outcome = follow_detached(attached, out=(sys.stderr if json_output else sys.stdout) if verbose else None)
            step_logs = replay_step_states(StepLogs(attached.log_dir))
        else:
            with attached_console(attached, spec) as console:
                name, outcome = follow_detached(attached, out=None, on_poll=console.replay)
            step_logs = console.step_logs
    except KeyboardInterrupt:
        typer.echo(f"stopped following; run {run_id} goes on in the background", err=True)
        return
    if json_output:
        print_json(outcome.as_dict())
    else:
        print_summary(name, outcome, spec=spec, step_logs=step_logs, tracking_uri=attached.tracking_uri)
    if outcome.status != "FINISHED":
        raise typer.Exit(1)


@app.command("logs")
def run_logs(
    run_id: str = typer.Argument(..., help="KFP run id (from `vlp submit` or `vlp runs list --profile NAME`)."),
    profile: str = typer.Option("local", "--profile", "-p", envvar="VLP_PROFILE", help="Cluster profile the run is on."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """A cluster run's task states, pods, and the kubectl commands that show their logs."""
    cluster = _cluster_profile(profile)
    if cluster is None:
        raise _needs_cluster("`vlp runs logs`", "local runs print their logs while `vlp run` runs")
    from vlp.cli.cluster_runs_view import print_logs
    from vlp.platform.cluster_runs import cluster_run_logs

    print_logs(cluster_run_logs(cluster, run_id), json_output)


@app.command("cancel")
def cancel_run(
    run_id: str = typer.Argument(..., help="KFP run id."),
    profile: str = typer.Option("local", "--profile", "-p", envvar="VLP_PROFILE", help="Cluster profile the run is on."),
) -> None:
    """Terminate a cluster run: KFP stops its step pods, and the training step cancels its Volcano job."""
    cluster = _cluster_profile(profile)
    if cluster is None:
        raise _needs_cluster("`vlp runs cancel`", "stop a local run with Ctrl-C")
    from vlp.platform.cluster_runs import cancel_cluster_run

    details = cancel_cluster_run(cluster, run_id)
    typer.echo(f"cancel requested: {details['run_id']} ({details['name']}) is {details['state']}")


def _cluster_profile(name: str):
    """The named cluster profile, or None for `local`."""
    from vlp.platform.profiles import find_profile

    return find_profile(name)


def _needs_cluster(what: str, why: str):
    from vlp.platform.errors import VlpUserError

    return VlpUserError(f"{what} works on cluster runs ({why}): add --profile NAME")


def _fmt(value) -> str:
    return "" if value is None else f"{value:.4f}"
