"""`vlp run` end to end with 2 workers against a real S3 endpoint (moto) and a real MLflow server that
stores artifacts in that bucket; then the registry and a gated promotion."""

from __future__ import annotations

import json
import subprocess
import uuid

import boto3
import pytest
import yaml
from services import VLP
from mlflow.tracking import MlflowClient

EXPERIMENT = {
    "name": "e2e-small",
    "team": "tests",
    "data": {"shapes": {"train_samples": 2048, "eval_samples": 256, "shard_size": 512}},
    "train": {"batch_size": 64, "max_steps": 40, "warmup_steps": 5, "lr": 0.003, "checkpoint_every": 20, "log_every": 5},
    "resources": {"nodes": 2, "procs_per_node": 1},
    "register": {"model_name": "e2e-clip", "gates": ["zeroshot/shapes/acc5 >= 0.0", "zeroshot/shapes/acc1 >= 0.99"]},
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, s3_server, s3_bucket, mlflow_server):
    import os

    from services import TEST_CREDENTIALS

    workdir = tmp_path_factory.mktemp("e2e")
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    spec = {**EXPERIMENT, "storage_root": f"s3://{s3_bucket}/{prefix}"}
    path = workdir / "experiment.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {**os.environ, **TEST_CREDENTIALS, "AWS_ENDPOINT_URL": s3_server.url, "MLFLOW_TRACKING_URI": mlflow_server.url,
           "VLP_HOME": str(workdir / "home"), "PYTHONSAFEPATH": "1"}
    result = subprocess.run([VLP, "run", str(path), "--json"], env=env, cwd=workdir, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout)
    s3 = boto3.client("s3", endpoint_url=s3_server.url, aws_access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
    keys = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket) for item in page.get("Contents", [])]
    return {"outcome": outcome, "keys": keys, "prefix": prefix, "env": env, "client": MlflowClient(mlflow_server.url)}


def test_run_reports_finished_with_metrics_and_model(finished_run):
    outcome = finished_run["outcome"]
    assert outcome["status"] == "FINISHED"
    assert outcome["model"] == {"name": "e2e-clip", "version": outcome["model"]["version"]}
    for key in ("zeroshot/shapes/acc1", "zeroshot/shapes/acc5", "retrieval/shapes/image_retrieval_recall_at_1"):
        assert 0.0 <= outcome["metrics"][key] <= 1.0


def test_shards_checkpoints_and_model_landed_in_the_bucket(finished_run):
    keys, prefix, run_id = finished_run["keys"], finished_run["prefix"], finished_run["outcome"]["run_id"]
    shards = [k for k in keys if k.startswith(f"{prefix}/datasets/") and k.endswith(".tar")]
    assert len(shards) == 4 + 1  # 2048/512 training shards + 1 evaluation shard
    assert sum(k.endswith("manifest.json") for k in keys if k.startswith(f"{prefix}/datasets/")) == 2
    checkpoints = [k for k in keys if k.startswith(f"{prefix}/runs/{run_id}/checkpoints/")]
    # Checkpoint objects get a fresh key per save (`step-00000040-<nonce>.pt`); latest.json points at one.
    assert any(k.startswith(f"{prefix}/runs/{run_id}/checkpoints/step-00000040-") and k.endswith(".pt") for k in checkpoints)
    assert f"{prefix}/runs/{run_id}/checkpoints/latest.json" in checkpoints
    assert any(k.startswith(f"{prefix}/runs/{run_id}/results/") and k.endswith(".json") for k in keys)
    # MLflow proxies artifacts into the same bucket: the logged pyfunc model is there.
    assert any(k.startswith("mlartifacts/") and k.endswith("MLmodel") for k in keys)


def test_mlflow_has_params_curves_and_tags(finished_run):
    client, run_id = finished_run["client"], finished_run["outcome"]["run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.batch_size"] == "64"
    assert run.data.params["resources.nodes"] == "2"
    assert run.data.tags["vlp.team"] == "tests"
    losses = client.get_metric_history(run_id, "train/loss")
    assert [m.step for m in losses] == list(range(5, 41, 5))
    assert losses[-1].value < losses[0].value
    assert all(0 < m.value < 1e6 for m in client.get_metric_history(run_id, "train/samples_per_second"))


def test_registered_version_has_alias_tags_and_loads_as_pyfunc(finished_run):
    import mlflow
    import pandas as pd

    client, version = finished_run["client"], finished_run["outcome"]["model"]["version"]
    model_version = client.get_model_version_by_alias("e2e-clip", "candidate")
    assert model_version.version == version
    assert len(model_version.tags["vlp.spec_hash"]) == 12
    assert "vlp.git_commit" in model_version.tags
    assert float(model_version.tags["metric.zeroshot/shapes/acc1"]) == pytest.approx(finished_run["outcome"]["metrics"]["zeroshot/shapes/acc1"], rel=1e-4)
    mlflow.set_tracking_uri(client.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/e2e-clip@candidate")
    embeddings = model.predict(pd.DataFrame({"text": ["a red circle", "a small blue star"]}))
    assert len(embeddings) == 2 and len(embeddings["embedding"][0]) == 64


def test_promotion_refused_when_a_gate_fails_then_forced(finished_run):
    env, version = finished_run["env"], finished_run["outcome"]["model"]["version"]
    refused = subprocess.run([VLP, "promote", "e2e-clip", version, "--alias", "champion"], env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1
    assert "zeroshot/shapes/acc1 >= 0.99" in refused.stderr and "Traceback" not in refused.stderr
    client = finished_run["client"]
    assert "champion" not in client.get_registered_model("e2e-clip").aliases
    forced = subprocess.run([VLP, "promote", "e2e-clip", version, "--alias", "champion", "--force"], env=env, capture_output=True, text=True, timeout=120)
    assert forced.returncode == 0, forced.stderr
    assert client.get_model_version_by_alias("e2e-clip", "champion").version == version
    audit = json.loads(client.get_model_version("e2e-clip", version).tags["vlp.promoted.champion"])
    assert audit["forced"] is True
