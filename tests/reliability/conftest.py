"""Fixtures for fault injection: credentials planted in the environment (to prove they never leak), an MLflow
server running MLflow's basic-auth app, a tiny shards dataset in the moto bucket, and S3 access to it."""

from __future__ import annotations

import uuid

import boto3
import pytest
from background_runs import RunsAtOnce, start_runs_at_once
from services import TEST_CREDENTIALS, start_mlflow

# Tiny and fixed: 8 shards of 32 samples, so two consumers see 16 batches of 8 per epoch.
DATASET_SAMPLES, DATASET_SHARD_SIZE = 256, 32


@pytest.fixture(scope="session")
def planted() -> dict[str, str]:
    """Credentials that vlp really uses in these tests and must never write anywhere."""
    tag = uuid.uuid4().hex[:12]
    return {
        "AWS_SECRET_ACCESS_KEY": f"planted-aws-secret-{tag}",
        "AWS_SESSION_TOKEN": f"planted-aws-session-{tag}",
        "MLFLOW_TRACKING_PASSWORD": f"planted-mlflow-password-{tag}",
    }


@pytest.fixture(scope="session")
def auth_mlflow(tmp_path_factory, s3_server, s3_bucket, planted):
    """A real `mlflow server --app-name basic-auth` storing artifacts in the moto bucket; user `admin`."""
    service = start_mlflow(tmp_path_factory.mktemp("auth-mlflow"), s3_server.url, s3_bucket, admin_password=planted["MLFLOW_TRACKING_PASSWORD"])
    yield service
    service.stop()


@pytest.fixture(scope="session")
def s3(s3_server):
    return boto3.client("s3", endpoint_url=s3_server.url, aws_access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")


@pytest.fixture(scope="session")
def shards_in_s3(tmp_path_factory, s3, s3_bucket) -> str:
    """A shapes dataset generated once and uploaded to the bucket; returns its s3:// URI."""
    from vlp.workloads.data.shapes import ShapesParams, generate_shapes

    local = tmp_path_factory.mktemp("shards")
    generate_shapes(ShapesParams(samples=DATASET_SAMPLES, seed=0, shard_size=DATASET_SHARD_SIZE, image_size=32), str(local), processes=1)
    prefix = f"reliability-data/{uuid.uuid4().hex[:8]}"
    for path in local.iterdir():
        s3.upload_file(str(path), s3_bucket, f"{prefix}/{path.name}")
    return f"s3://{s3_bucket}/{prefix}"



@pytest.fixture(scope="session")
def runs_at_once(tmp_path_factory, planted) -> RunsAtOnce:
    """Four `vlp run` at once, started on first request and left running in the background."""
    runs = start_runs_at_once(tmp_path_factory.mktemp("runs-at-once"), planted)
    yield runs
    runs.stop()
