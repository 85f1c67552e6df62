"""`kfp.Client` calls made by `vlp submit` and `vlp runs … --profile`, against a fake KFP v2beta1 API
on 127.0.0.1: what is sent (bearer token, experiment, run, service account, platform spec), status
polling, cancel, and how refusals read (one line, exit 2, no token)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cluster_harness import BASE_PROFILE, CANARY, EXPERIMENT, GPU_SHAPE, TOKEN, assert_one_line_error, profile_document, run_vlp

from vlp.platform.runtime import RuntimeContext

API = "/apis/v2beta1"


def _submit(*extra: str) -> dict:
    # The working tree is not shipped here (no S3); test_submit_ships_the_working_tree_before_the_run does that.
    code, out, err = run_vlp("submit", str(EXPERIMENT), "--profile", "gpu", *GPU_SHAPE, "--no-ship", "--set", "team=vision", "--json", *extra)
    assert code == 0, err
    for text in (out, err):
        assert TOKEN not in text and CANARY not in text
    return json.loads(out)


def test_submit_creates_the_team_experiment_and_a_run(cluster_profile):
    server = cluster_profile
    report = _submit()
    assert report["url"] == f"{server.url}/#/runs/details/{report['run_id']}"
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in server.requests), "every call carries the token"

    created = [r for r in server.requests if r.method == "POST" and r.path == f"{API}/experiments"]
    assert [r.body["display_name"] for r in created] == ["vision"], "the KFP experiment is named after the team"
    assert created[0].body["namespace"] == "vlp"

    (run_request,) = [r for r in server.requests if r.method == "POST" and r.path == f"{API}/runs"]
    body = run_request.body
    assert body["display_name"] == report["run_name"] == f"quickstart-{report['run_key'][:8]}"
    assert body["experiment_id"] == created[0].body.get("experiment_id", next(iter(server.experiments)))
    assert body["service_account"] == "vlp-pipeline"
    runtime = RuntimeContext.model_validate_json(body["runtime_config"]["parameters"]["runtime_json"])
    assert runtime.run_key == report["run_key"] and runtime.scheduler == "kubernetes"
    assert json.loads(body["runtime_config"]["parameters"]["spec_json"])["team"] == "vision"
    executors = body["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert "secretAsEnv" in executors["exec-pretrain"], "the kfp-kubernetes settings travel with the run"
    assert CANARY not in json.dumps(body) and TOKEN not in json.dumps(body)

    # A second submission reuses the experiment.
    _submit()
    assert len([r for r in server.requests if r.method == "POST" and r.path == f"{API}/experiments"]) == 1


def test_submit_ships_the_working_tree_before_the_run(write_profiles, kfp_server, s3_env, s3_bucket):
    import boto3

    write_profiles(profile_document(storage_root=f"s3://{s3_bucket}/vlp", kfp={**BASE_PROFILE["kfp"], "host": kfp_server.url}))
    code, out, err = run_vlp("submit", str(EXPERIMENT), "--profile", "gpu", *GPU_SHAPE, "--json")
    assert code == 0, err
    workspace = json.loads(out)["workspace"]
    bucket, key = workspace["uri"].removeprefix("s3://").split("/", 1)
    stored = boto3.client("s3", endpoint_url=s3_env.url).get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == workspace["wheel_sha256"]
    (run_request,) = [r for r in kfp_server.requests if r.method == "POST" and r.path == f"{API}/runs"]
    runtime = RuntimeContext.model_validate_json(run_request.body["runtime_config"]["parameters"]["runtime_json"])
    assert runtime.workspace.model_dump() == workspace and runtime.git_commit == workspace["git_commit"]


def test_submit_prints_run_id_and_url(cluster_profile):
    code, out, err = run_vlp("submit", str(EXPERIMENT), "--profile", "gpu", *GPU_SHAPE, "--no-ship")
    assert code == 0, err
    (run_id,) = cluster_profile.runs
    assert run_id in out and f"/#/runs/details/{run_id}" in out
    assert f"vlp runs show {run_id} --profile gpu --watch" in out


def test_show_and_watch_poll_until_the_run_ends(cluster_profile):
    server = cluster_profile
    run_id = _submit()["run_id"]
    code, out, err = run_vlp("runs", "show", run_id, "--profile", "gpu", "--json")
    assert code == 0, err
    details = json.loads(out)
    assert details["state"] == "RUNNING" and details["run_key"]
    assert [t["name"] for t in details["tasks"]][:3] == ["start-run", "prepare-data", "pretrain"]
    assert details["mlflow"] is None, "no mlflow.external_uri in this profile"

    code, out, err = run_vlp("runs", "show", run_id, "--profile", "gpu", "--watch", "--interval", "0.01")
    assert code == 0, err
    lines = out.splitlines()
    assert any("RUNNING" in line and "running: pretrain" in line for line in lines)
    assert any(line.startswith(f"{run_id}  SUCCEEDED") for line in lines)
    polls = [r for r in server.requests if r.method == "GET" and r.path == f"{API}/runs/{run_id}"]
    assert len(polls) >= 3


def test_watch_exits_1_when_the_run_fails(cluster_profile):
    cluster_profile.progression = ("PENDING", "RUNNING", "FAILED")
    run_id = _submit()["run_id"]
    code, out, _ = run_vlp("runs", "show", run_id, "--profile", "gpu", "--watch", "--interval", "0.01")
    assert code == 1 and "FAILED" in out


def test_cancel_terminates_the_run(cluster_profile):
    server = cluster_profile
    run_id = _submit()["run_id"]
    code, out, err = run_vlp("runs", "cancel", run_id, "--profile", "gpu")
    assert code == 0, err
    assert [r.method for r in server.requests if r.path == f"{API}/runs/{run_id}:terminate"] == ["POST"]
    assert "CANCELED" in out


def test_list_and_logs(cluster_profile):
    run_id = _submit()["run_id"]
    code, out, err = run_vlp("runs", "list", "--profile", "gpu", "--json")
    assert code == 0, err
    (listed,) = json.loads(out)
    assert listed["run_id"] == run_id and listed["run_key"]
    code, out, err = run_vlp("runs", "list", "--profile", "gpu")
    assert code == 0 and run_id in out

    code, out, err = run_vlp("runs", "logs", run_id, "--profile", "gpu")
    assert code == 0, err
    assert f"kubectl logs -n vlp -l vlp.io/run-key={listed['run_key']}" in out
    assert "kubectl logs -n vlp quickstart-" in out and "-c main" in out


def test_logs_and_cancel_need_a_cluster_profile():
    for command in (("runs", "logs", "abc"), ("runs", "cancel", "abc")):
        code, _, err = run_vlp(*command)
        assert_one_line_error(code, err, "--profile")


def test_expired_token_is_one_line(cluster_profile):
    cluster_profile.valid_tokens.clear()
    cluster_profile.expired_tokens.add(TOKEN)
    code, out, err = run_vlp("submit", str(EXPERIMENT), "--profile", "gpu", *GPU_SHAPE, "--no-ship")
    assert_one_line_error(code, err, "rejected the token from $VLP_KFP_TOKEN", "401", "expired")
    assert TOKEN not in out + err
    code, _, err = run_vlp("runs", "show", "some-run", "--profile", "gpu")
    assert_one_line_error(code, err, "401")


def test_expired_token_from_the_installed_cli(cluster_profile, tmp_path):
    """The real `vlp` executable: one line on stderr, exit 2, no traceback."""
    cluster_profile.valid_tokens.clear()
    cluster_profile.expired_tokens.add(TOKEN)
    vlp = Path(sys.executable).parent / "vlp"
    result = subprocess.run([str(vlp), "runs", "list", "--profile", "gpu"], capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert_one_line_error(result.returncode, result.stderr, "401")
    assert TOKEN not in result.stdout + result.stderr


def test_missing_token_variable(cluster_profile, monkeypatch):
    monkeypatch.delenv("VLP_KFP_TOKEN")
    code, _, err = run_vlp("runs", "list", "--profile", "gpu")
    assert_one_line_error(code, err, "$VLP_KFP_TOKEN", "not set")


def test_unknown_run_and_unreachable_host(cluster_profile, write_profiles):
    code, _, err = run_vlp("runs", "show", "no-such-run", "--profile", "gpu")
    assert_one_line_error(code, err, "not found")
    cluster_profile.stop()
    code, _, err = run_vlp("runs", "list", "--profile", "gpu")
    assert_one_line_error(code, err, "cannot reach KFP")


def test_single_user_kfp_fails_fast_on_a_bad_token(write_profiles, kfp_server, monkeypatch):
    """Without a namespace kfp.Client asks /healthz, retrying errors for ~25 s; vlp asks once first."""
    write_profiles(profile_document(kfp={"host": kfp_server.url, "auth": {"token_env": "VLP_KFP_TOKEN"}}))
    assert _submit()["run_id"]
    assert any(r.path == f"{API}/healthz" for r in kfp_server.requests)
    monkeypatch.setenv("VLP_KFP_TOKEN", "stale")
    started = time.monotonic()
    code, out, err = run_vlp("runs", "list", "--profile", "gpu")
    assert_one_line_error(code, err, "401")
    assert time.monotonic() - started < 4


def test_token_file_auth(write_profiles, kfp_server, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    write_profiles(profile_document(kfp={**BASE_PROFILE["kfp"], "host": kfp_server.url, "auth": {"token_path": str(token_file)}}))
    _submit()
    assert kfp_server.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"


def test_show_links_the_mlflow_run(write_profiles, kfp_server, tmp_path):
    from mlflow.tracking import MlflowClient

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow = MlflowClient(tracking_uri=tracking)
    experiment = mlflow.create_experiment("quickstart", artifact_location=(tmp_path / "artifacts").as_uri())
    from vlp.platform.tracking.headline import headline_tag

    # The run names its headline metric (the experiment's `headline:`), which `vlp runs list` shows.
    run = mlflow.create_run(experiment, tags={"vlp.run_key": "k" * 32, **headline_tag(["zeroshot/eval/acc1"])})
    mlflow.log_metric(run.info.run_id, "zeroshot/eval/acc1", 0.91)
    run_id = kfp_server.add_run("quickstart-kkkkkkkk", json.dumps({"run_key": "k" * 32}))
    write_profiles(profile_document(kfp={**BASE_PROFILE["kfp"], "host": kfp_server.url},
                                    mlflow={**BASE_PROFILE["mlflow"], "external_uri": tracking}))
    code, out, err = run_vlp("runs", "show", run_id, "--profile", "gpu", "--json")
    assert code == 0, err
    details = json.loads(out)
    assert details["mlflow"]["run_id"] == run.info.run_id
    assert details["mlflow"]["metrics"] == {"zeroshot/eval/acc1": pytest.approx(0.91)}
    code, out, _ = run_vlp("runs", "list", "--profile", "gpu")
    assert code == 0 and run.info.run_id in out and "0.9100" in out
