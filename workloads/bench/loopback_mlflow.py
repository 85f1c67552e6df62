"""An MLflow tracking server on 127.0.0.1 for benchmarks (`mlflow server`, SQLite backend, one worker), so that
logging pays what it pays against a real server: a request per call, over HTTP."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Iterator

from vlp.platform.launch.torchx_launcher import free_port
from vlp.workloads.bench.loopback_s3 import BIN, stop_process, wait_for_http


@contextlib.contextmanager
def loopback_mlflow(workdir: Path) -> Iterator[str]:
    """Yields the server's tracking URI; the server stops when the block ends."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [
        str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
        "--default-artifact-root", str(workdir / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]
    with open(workdir / "mlflow-server.log", "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            uri = f"http://127.0.0.1:{port}"
            wait_for_http(uri + "/health", process, "mlflow server", timeout=180)
            yield uri
        finally:
            stop_process(process)
