"""Shared fixtures: an isolated VLP_HOME per test, real S3 (moto) and MLflow servers on 127.0.0.1, and one torch
thread for tests of tiny models."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from services import TEST_CREDENTIALS, VLP, start_mlflow, start_moto  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def mlflow_uris_restored():
    """`mlflow.set_tracking_uri`/`set_registry_uri` are process-wide, win over MLFLOW_TRACKING_URI and also write it
    into os.environ: left set by one test, later tests' clients (mlflow.register_model, load_model) talk to that
    test's server. Restored after each test that imported mlflow."""
    saved_env = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    saved = mlflow_global_uris()
    yield
    if "mlflow" not in sys.modules or mlflow_global_uris() == saved:
        return
    import mlflow

    mlflow.set_tracking_uri(saved[0])
    mlflow.set_registry_uri(saved[1])
    for name, value in saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def mlflow_global_uris() -> tuple[str | None, str | None]:
    if "mlflow" not in sys.modules:
        return None, None
    from mlflow.tracking._model_registry import utils as registry
    from mlflow.tracking._tracking_service import utils as tracking

    return tracking._tracking_uri, registry._registry_uri


@pytest.fixture
def one_thread():
    """Tiny models on a shared 2-core machine run with one intra-op thread: with two, each op's hand-off between
    threads cost more than the op whenever other processes held the cores (measured 10-100× slower). A module
    opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shapes_shards(tmp_path_factory) -> list[str]:
    """64 shapes pairs in two webdataset shards: data for tests that train a tiny model for a few steps."""
    from vlp.workloads.data.shapes import ShapesParams, generate_shapes
    from vlp.workloads.data.shards import list_shards

    root = tmp_path_factory.mktemp("shapes")
    generate_shapes(ShapesParams(samples=64, seed=0, shard_size=32), str(root), processes=1)
    return list_shards(str(root))


@pytest.fixture
def vlp_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "vlp-home"
    monkeypatch.setenv("VLP_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("moto")
    service = start_moto(workdir)
    yield service
    service.stop()


@pytest.fixture(scope="session")
def s3_bucket(s3_server) -> str:
    import boto3

    bucket = "vlp-test"
    client = boto3.client("s3", endpoint_url=s3_server.url, **{k.lower(): v for k, v in TEST_CREDENTIALS.items() if k != "AWS_DEFAULT_REGION"}, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """vlp's storage reaches the moto server during this test: its endpoint and test credentials in the environment."""
    import vlp.platform.storage as storage

    for key, value in {**TEST_CREDENTIALS, "AWS_ENDPOINT_URL": s3_server.url}.items():
        monkeypatch.setenv(key, value)
    storage._s3.cache_clear()  # the cached client was made for the environment before
    yield s3_server
    storage._s3.cache_clear()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory, s3_server, s3_bucket):
    workdir = tmp_path_factory.mktemp("mlflow")
    service = start_mlflow(workdir, s3_server.url, s3_bucket)
    yield service
    service.stop()


@pytest.fixture
def remote_env(s3_server, mlflow_server, vlp_home) -> dict[str, str]:
    """Environment for a `vlp` subprocess that uses the S3 endpoint and the MLflow server."""
    return {
        **os.environ,
        **TEST_CREDENTIALS,
        "AWS_ENDPOINT_URL": s3_server.url,
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "VLP_HOME": str(vlp_home),
        "PYTHONSAFEPATH": "1",
    }
