"""`vlp run` against S3 (moto) and MLflow's basic-auth app with credentials only in the environment: the whole
machine dies mid-training (every process SIGKILLed, the MLflow run left RUNNING), `vlp run --resume RUN_ID`
continues it in the same MLflow run to a registered model, and nothing either invocation wrote (MLflow params,
tags, artifacts, objects, logs, the compiled pipeline) holds a planted credential."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import yaml
from jobs import VLP, environ, files_under, find_secrets, kill_run, metric_history, service_env, start

STEPS, CHECKPOINT_EVERY, LOG_EVERY, KILL_AFTER_STEP = 24, 4, 2, 8
MODEL = "resumed-clip"


def experiment(storage_root: str) -> dict:
    return {
        "name": "resume-me", "team": "tests", "seed": 2, "storage_root": storage_root,
        "data": {"shapes": {"train_samples": 96, "eval_samples": 32, "shard_size": 16}},
        "model": {"preset": "shapes-vit-micro"},
        "train": {"batch_size": 8, "max_steps": STEPS, "warmup_steps": 2, "checkpoint_every": CHECKPOINT_EVERY, "log_every": LOG_EVERY},
        "resources": {"nodes": 1, "procs_per_node": 1},
        "eval": {"batch_size": 32, "zeroshot": True, "retrieval": False, "linear_probe": False, "segmentation": False,
                 "modality_gap": False, "per_domain": False, "plots": False},
        "register": {"model_name": MODEL},
    }


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, s3_server, s3_bucket, s3, auth_mlflow, planted, runs_at_once):
    # `runs_at_once`: four CPU-bound `vlp run` go on in the background while this scenario mostly waits.
    work = tmp_path_factory.mktemp("resume")
    prefix = f"resume-{uuid.uuid4().hex[:8]}"
    path = work / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment(f"s3://{s3_bucket}/{prefix}")))
    env = service_env(planted, s3_server.url, auth_mlflow.url, work / "home")
    started = time.time()

    first = start([VLP, "run", str(path), "--json"], env, work)
    run_id = None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and first.process.poll() is None:
        keys = [item["Key"] for item in s3.list_objects_v2(Bucket=s3_bucket, Prefix=f"{prefix}/runs/").get("Contents", [])]
        manifests = [key for key in keys if key.endswith("checkpoints/latest.json")]
        if manifests and json.loads(s3.get_object(Bucket=s3_bucket, Key=manifests[0])["Body"].read())["step"] >= KILL_AFTER_STEP:
            run_id = manifests[0].split("/")[2]
            break
        time.sleep(0.3)
    assert run_id is not None, first.output[-4000:]
    # The machine dies: `vlp run`, its pipeline steps and the training job (TorchX gives it a session of its own).
    os.killpg(first.process.pid, signal.SIGKILL)
    killed = kill_run(run_id)
    first.wait(60)

    with environ(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=planted["MLFLOW_TRACKING_PASSWORD"]):
        from mlflow.tracking import MlflowClient

        client = MlflowClient(auth_mlflow.url)
        status_after_crash = client.get_run(run_id).info.status
    second = subprocess.run([VLP, "run", "--resume", run_id, "--json"], env=env, cwd=work, capture_output=True, text=True, timeout=900)
    compiled = work / "compiled.yaml"
    compile_result = subprocess.run([VLP, "compile", str(path), "-o", str(compiled)], env=env, cwd=work, capture_output=True, text=True, timeout=300)
    shown = subprocess.run([VLP, "runs", "show", run_id, "--json"], env=env, cwd=work, capture_output=True, text=True, timeout=300)
    return {"work": work, "prefix": prefix, "run_id": run_id, "killed": killed, "first": first, "second": second, "client_uri": auth_mlflow.url,
            "status_after_crash": status_after_crash, "compiled": compiled, "compile_result": compile_result, "shown": shown,
            "started": started, "s3": s3, "bucket": s3_bucket, "planted": planted}


def authed(resumed):
    from mlflow.tracking import MlflowClient

    return environ(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=resumed["planted"]["MLFLOW_TRACKING_PASSWORD"]), MlflowClient(resumed["client_uri"])


def test_a_crash_leaves_the_run_running_and_resume_finishes_it_in_the_same_run(resumed):
    assert resumed["killed"] >= 2  # torchrun and its worker were still training
    assert resumed["status_after_crash"] == "RUNNING"
    second = resumed["second"]
    assert second.returncode == 0, second.stderr[-4000:]
    outcome = json.loads(second.stdout)
    assert outcome["run_id"] == resumed["run_id"] and outcome["status"] == "FINISHED"
    assert outcome["model"]["name"] == MODEL
    assert "resumed from checkpoint at step" in (Path(outcome["logs"]) / "pretrain.log").read_text()
    context, client = authed(resumed)
    with context:
        run = client.get_run(resumed["run_id"])
        losses = metric_history(client, resumed["run_id"], "train/loss")
    assert run.data.tags["vlp.attempts"] == "2" and "vlp.error" not in run.data.tags
    assert [step for step, _ in losses] == list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))  # the step counter went on: no gap, no duplicate


def test_the_basic_auth_server_refuses_requests_without_the_environment_credentials(resumed):
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    with environ(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD="wrong", MLFLOW_HTTP_REQUEST_MAX_RETRIES="0"):
        with pytest.raises(MlflowException, match="401|Unauthorized|credentials"):
            MlflowClient(resumed["client_uri"]).get_run(resumed["run_id"])


def test_no_planted_credential_in_anything_the_runs_wrote(resumed):
    planted = resumed["planted"]
    assert resumed["compile_result"].returncode == 0, resumed["compile_result"].stderr
    assert resumed["shown"].returncode == 0, resumed["shown"].stderr
    blobs = files_under(resumed["work"])  # VLP_HOME (kfp-local step inputs and outputs), the compiled pipeline
    assert str(resumed["compiled"]) in blobs
    blobs.update({
        "first vlp run output": resumed["first"].output.encode(),
        "resumed vlp run stdout+stderr": (resumed["second"].stdout + resumed["second"].stderr).encode(),
        "vlp runs show": resumed["shown"].stdout.encode(),
    })
    # TorchX's local scheduler keeps each job's logs in a temporary directory of its own.
    for log_dir in Path(tempfile.gettempdir()).glob("torchx_*"):
        if log_dir.stat().st_mtime >= resumed["started"]:
            blobs.update(files_under(log_dir))
    s3, bucket = resumed["s3"], resumed["bucket"]
    context, client = authed(resumed)
    with context:
        run = client.get_run(resumed["run_id"])
        blobs["mlflow params, tags, metric names"] = json.dumps([run.data.params, run.data.tags, sorted(run.data.metrics)]).encode()
        artifacts = Path(client.download_artifacts(resumed["run_id"], "", str(resumed["work"].parent / "artifacts")))
        blobs.update(files_under(artifacts))
        versions = client.search_model_versions(f"name = '{MODEL}'")
        blobs["model version tags"] = json.dumps([dict(version.tags) for version in versions]).encode()
    keys = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", []) if item["Key"].startswith((resumed["prefix"] + "/", "mlartifacts/"))]
    blobs.update({f"s3://{bucket}/{key}": s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys})
    assert any(key.endswith("MLmodel") for key in keys) and any("/checkpoints/step-" in key for key in keys)
    assert find_secrets(planted, blobs) == []

