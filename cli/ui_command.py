"""`vlp ui`: the MLflow UI over the local store."""

from __future__ import annotations

import os

import typer


def ui(
    port: int = typer.Option(5000, "--port", help="Port on 127.0.0.1."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    workers: int = typer.Option(1, "--workers", min=1, help="Server processes (one serves one user; MLflow's own default is 4, each a second or more to start)."),
) -> None:
    """Serve the MLflow UI over the local tracking store (Ctrl-C stops it)."""
    import sys

    from vlp.platform.state import default_artifact_root, default_tracking_uri, vlp_home

    vlp_home().mkdir(parents=True, exist_ok=True)
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    command = [mlflow, "server", "--backend-store-uri", default_tracking_uri(), "--default-artifact-root", default_artifact_root(),
               "--host", host, "--port", str(port), "--workers", str(workers)]
    typer.echo(f"MLflow UI on http://{host}:{port}  (store: {default_tracking_uri()})")
    from vlp.platform.tracking.ui_server import record_ui

    # `vlp runs list` and `vlp models list` ask this server while it is up (the same pid after exec).
    loopback = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    record_ui(f"http://{loopback}:{port}", default_tracking_uri())
    os.execv(mlflow, command)
