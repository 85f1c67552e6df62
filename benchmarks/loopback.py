"""Real services on 127.0.0.1 for benchmarks and tests: moto's S3 server and an MLflow tracking server, each a
subprocess on a free port. One implementation: the test fixtures (tests/services.py) start them through here.

`loopback_s3` and `loopback_mlflow` are the benchmarks' blocks: the service is up (and, for S3, this process's
environment points at it with throwaway credentials) until the block ends.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from vlp.platform.launch.torchx_launcher import free_port

BIN = Path(sys.executable).parent
BENCH_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "vlp-bench", "AWS_SECRET_ACCESS_KEY": "vlp-bench", "AWS_DEFAULT_REGION": "us-east-1"}

__all__ = ["BIN", "Service", "free_port", "loopback_mlflow", "loopback_s3", "start_mlflow", "start_moto", "start_service",
           "upload_directory", "wait_for_http"]


def wait_for_http(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    """Until `url` answers; fails if the server process exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"service for {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not come up in {timeout:.0f}s")


@dataclass
class Service:
    process: subprocess.Popen
    url: str
    command: list[str]
    env: dict[str, str]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self, health_path: str, timeout: float = 60.0) -> None:
        """Start the same command on the same port again (for outage tests)."""
        self.stop()
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_for_http(self.url + health_path, timeout, process=self.process)


def start_service(command: list[str], url: str, health_path: str, env: dict[str, str], log_path: Path, timeout: float = 90) -> Service:
    log = open(log_path, "ab")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    service = Service(process, url, command, env, log_path)
    try:
        wait_for_http(url + health_path, timeout, process)
    except Exception:
        service.stop()
        raise RuntimeError(f"{command[0]} failed to start; log: {log_path.read_text()[-2000:]}") from None
    return service


def start_moto(workdir: Path, credentials: dict[str, str]) -> Service:
    moto = BIN / "moto_server"
    if not moto.exists():
        from vlp.platform.errors import VlpUserError

        raise VlpUserError("the s3:// benchmarks need moto's server (pip install 'moto[server]', part of vlp's test extras)")
    port = free_port()
    Path(workdir).mkdir(parents=True, exist_ok=True)
    command = [str(moto), "-H", "127.0.0.1", "-p", str(port)]
    return start_service(command, f"http://127.0.0.1:{port}", "/moto-api/", {**os.environ, **credentials}, Path(workdir) / "moto.log")


def start_mlflow(workdir: Path, artifacts: str | None = None, credentials: dict[str, str] | None = None, s3_endpoint: str | None = None,
                 admin_password: str | None = None) -> Service:
    """SQLite backend, one worker. `artifacts`: an `s3://bucket/path` the server proxies (`s3_endpoint` and
    `credentials` for it), else a local folder under `workdir`. With `admin_password`: MLflow's basic-auth app, whose
    only user is `admin` with that password."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, **(credentials or {})}
    if s3_endpoint is not None:
        env.update(AWS_ENDPOINT_URL=s3_endpoint, MLFLOW_S3_ENDPOINT_URL=s3_endpoint)
    artifact_flags = ["--artifacts-destination", artifacts] if artifacts else ["--default-artifact-root", str(workdir / "artifacts")]
    command = [
        str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}", *artifact_flags,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]
    if admin_password is not None:
        config = workdir / "basic_auth.ini"
        config.write_text(
            "[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
            f"database_uri = sqlite:///{workdir / 'basic_auth.db'}\nadmin_username = admin\nadmin_password = {admin_password}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # Password hashing per request is slow on a busy CPU; the server's own cache keeps tests quick.
            "auth_cache_ttl_seconds = 300\n"
        )
        command[2:2] = ["--app-name", "basic-auth"]
        env.update(MLFLOW_AUTH_CONFIG_PATH=str(config), MLFLOW_FLASK_SERVER_SECRET_KEY=os.urandom(16).hex())
    return start_service(command, f"http://127.0.0.1:{port}", "/health", env, workdir / "mlflow.log", timeout=180)


@contextlib.contextmanager
def loopback_s3(workdir: Path, bucket: str = "vlp-bench") -> Iterator[str]:
    """Yields `s3://bucket`; `AWS_ENDPOINT_URL` and credentials point at the loopback server until the block ends."""
    service = start_moto(workdir, BENCH_CREDENTIALS)
    saved = {name: os.environ.get(name) for name in (*BENCH_CREDENTIALS, "AWS_ENDPOINT_URL")}
    try:
        os.environ.update({**BENCH_CREDENTIALS, "AWS_ENDPOINT_URL": service.url})
        from vlp.platform.storage.s3 import make_client

        make_client().create_bucket(Bucket=bucket)
        yield f"s3://{bucket}"
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        service.stop()


@contextlib.contextmanager
def loopback_mlflow(workdir: Path) -> Iterator[str]:
    """Yields the tracking URI of a server logging to local files; the server stops when the block ends."""
    service = start_mlflow(workdir)
    try:
        yield service.url
    finally:
        service.stop()


def upload_directory(local_dir: Path, uri: str) -> list[str]:
    """Every file of `local_dir` under `uri/`, in name order; returns their URIs."""
    from vlp.platform.storage import join, open_storage

    uris = []
    for path in sorted(Path(local_dir).iterdir()):
        if path.is_file():
            target = join(uri, path.name)
            open_storage(target).write_bytes(target, path.read_bytes())
            uris.append(target)
    return uris
