"""Real services on 127.0.0.1 for tests: moto's S3 server and an MLflow tracking server that proxies
artifacts to it. Each is a subprocess on a free port, started and stopped by a fixture."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
VLP = str(BIN / "vlp")
TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "vlp-test-key", "AWS_SECRET_ACCESS_KEY": "vlp-test-secret", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
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


def start_moto(workdir: Path) -> Service:
    port = free_port()
    env = {**os.environ, **TEST_CREDENTIALS}
    command = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    return start_service(command, f"http://127.0.0.1:{port}", "/moto-api/", env, workdir / "moto.log")


def start_mlflow(workdir: Path, s3_endpoint: str, bucket: str, admin_password: str | None = None) -> Service:
    """With `admin_password`: MLflow's basic-auth app, whose only user is `admin` with that password."""
    port = free_port()
    env = {**os.environ, **TEST_CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}
    command = [
        str(BIN / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
        "--artifacts-destination", f"s3://{bucket}/mlartifacts",
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
