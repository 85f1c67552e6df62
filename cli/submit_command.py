"""`vlp submit FILE --profile NAME`: run the experiment's pipeline on a cluster (or, with --dry-run, write what would run)."""

from __future__ import annotations

from pathlib import Path

import typer


def submit(
    experiment: Path = typer.Argument(..., help="Experiment file (YAML)."),
    profile: str = typer.Option(..., "--profile", "-p", envvar="VLP_PROFILE", help="Cluster profile to submit to (`vlp profiles list`)."),
    set_: list[str] = typer.Option([], "--set", help="Override a field: --set train.lr=0.001 (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Write the compiled pipeline and every Volcano job its training steps launch to --out; contact nothing."),
    out: Path = typer.Option(None, "--out", help="Directory for pipeline.yaml and <job>.volcano.yaml (needed with --dry-run; kept when submitting)."),
    no_ship: bool = typer.Option(False, "--no-ship", help="Run the image's vlp as it is instead of shipping this checkout's working tree."),
    allow_drift: bool = typer.Option(False, "--allow-drift", help="Submit even if the image was built from another requirements.lock than the local one."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Compile the experiment's pipeline with the profile's Kubernetes settings and start it on Kubeflow Pipelines."""
    import tempfile

    from vlp.platform.errors import VlpUserError
    from vlp.platform.profiles import find_profile
    from vlp.platform.spec import load_spec

    if dry_run and out is None:
        raise VlpUserError("--dry-run writes files and submits nothing: give it --out DIR")
    cluster = find_profile(profile)
    if cluster is None:
        raise VlpUserError("--profile local is this machine: run the experiment with `vlp run FILE`")
    spec = load_spec(experiment, set_)
    from vlp.platform.image_lock import check_image_lock
    from vlp.platform.preflight import check_experiment

    check_experiment(spec, cluster)
    if not dry_run and cluster.mlflow.external_uri:
        # The start-run step checks again in the cluster with the pod's login; this refuses before anything is submitted.
        from vlp.platform.tracking.permissions import check_team_access

        check_team_access(spec, cluster.mlflow.external_uri)
    drift = check_image_lock(cluster, allow_drift)
    if drift:
        typer.echo(f"vlp: warning: {drift}", err=True)

    from vlp.pipelines.submit import package_for_cluster, submit_package
    from vlp.platform.workspace import prepare_workspace, upload_workspace

    # The working tree travels as a wheel named by its content hash (see vlp.platform.workspace).
    shipped, wheel = (None, None) if no_ship else prepare_workspace(cluster.storage_root)
    with tempfile.TemporaryDirectory(prefix="vlp-submit-") as scratch:
        package = package_for_cluster(spec, cluster, out or Path(scratch), workspace=shipped)
        submitted = None
        if not dry_run:
            if shipped is not None:
                upload_workspace(shipped, wheel)
            submitted = submit_package(package)
    _report(package, submitted, out, json_output)


def _report(package, submitted, out: Path | None, json_output: bool) -> None:
    from vlp.cli.output import print_json

    files = {"pipeline": str(package.pipeline), "training_jobs": {job: str(path) for job, path in package.training_jobs.items()}} if out else {}
    if json_output:
        document = {"profile": package.profile.name, "experiment": package.experiment, "run_name": package.run_name, "run_key": package.runtime.run_key, **files}
        workspace = package.runtime.workspace
        document["workspace"] = workspace.model_dump() if workspace else None
        if submitted is not None:
            document.update(run_id=submitted.run_id, url=submitted.url)
        print_json(document)
        return
    if submitted is None:
        typer.echo(f"dry run for profile {package.profile.name}: nothing was submitted")
        width = max(len("pipeline"), *(len(job) for job in files["training_jobs"]))
        typer.echo(f"  {'pipeline':<{width}}  {files['pipeline']}")
        for job, path in files["training_jobs"].items():
            typer.echo(f"  {job:<{width}}  {path}  (Volcano job)")
        _report_workspace(package.runtime.workspace, uploaded=False)
        return
    typer.echo(f"submitted {package.spec.name} to {package.profile.kfp.host} (KFP experiment {package.experiment})")
    typer.echo(f"  run    {submitted.run_id}  ({submitted.run_name})")
    typer.echo(f"  url    {submitted.url}")
    typer.echo(f"  watch  vlp runs show {submitted.run_id} --profile {package.profile.name} --watch")
    _report_workspace(package.runtime.workspace, uploaded=True)


def _report_workspace(workspace, uploaded: bool) -> None:
    if workspace is None:
        typer.echo("  code   the image's vlp (--no-ship)")
        return
    state = "with uncommitted changes" if workspace.dirty else "clean"
    where = workspace.uri if uploaded else f"{workspace.uri} (not uploaded: dry run)"
    typer.echo(f"  code   working tree {workspace.content_sha256[:12]} on {workspace.git_commit[:12]}, {state}: {where}")
