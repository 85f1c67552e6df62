"""Real services on 127.0.0.1 for tests: moto's S3 server and an MLflow tracking server that proxies artifacts to
it, started and stopped by fixtures. The services themselves are vlp.benchmarks.loopback's (one implementation for
tests and benchmarks); this module holds the tests' credentials and paths."""

from __future__ import annotations

from pathlib import Path

from vlp.benchmarks.loopback import BIN, Service, free_port, start_service, wait_for_http
from vlp.benchmarks.loopback import start_mlflow as _start_mlflow
from vlp.benchmarks.loopback import start_moto as _start_moto

VLP = str(BIN / "vlp")
TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "vlp-test-key", "AWS_SECRET_ACCESS_KEY": "vlp-test-secret", "AWS_DEFAULT_REGION": "us-east-1"}

__all__ = ["BIN", "VLP", "TEST_CREDENTIALS", "Service", "free_port", "start_mlflow", "start_moto", "start_service", "wait_for_http"]


def start_moto(workdir: Path) -> Service:
    return _start_moto(workdir, TEST_CREDENTIALS)


def start_mlflow(workdir: Path, s3_endpoint: str, bucket: str, admin_password: str | None = None) -> Service:
    """With `admin_password`: MLflow's basic-auth app, whose only user is `admin` with that password."""
    return _start_mlflow(workdir, f"s3://{bucket}/mlartifacts", TEST_CREDENTIALS, s3_endpoint, admin_password)
