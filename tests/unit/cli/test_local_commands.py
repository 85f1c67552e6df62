"""The local CLI verbs against a real (SQLite) MLflow store and local storage."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request

import yaml
from services import VLP


def vlp(*args, env, cwd, timeout=300):
    return subprocess.run([VLP, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_data_make_shapes_writes_shards_and_manifest(tmp_path, vlp_home):
    env = {**os.environ}
    out = tmp_path / "shapes"
    result = vlp("data", "make", "shapes", "--out", str(out), "--samples", "300", "--seed", "3", "--shard-size", "100", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["samples"] == 300 and len(manifest["shards"]) == 3 and manifest["samples_per_second"] > 0
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    human = vlp("data", "make", "shapes", "--out", str(tmp_path / "again"), "--samples", "50", env=env, cwd=tmp_path)
    assert human.returncode == 0 and "samples/s" in human.stdout


def test_compile_writes_loadable_pipeline(tmp_path, vlp_home):
    from kfp.components import load_component_from_file

    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump({"name": "compiled", "train": {"max_steps": 3}}))
    target = tmp_path / "out" / "pipeline.yaml"
    result = vlp("compile", str(spec), "-o", str(target), env={**os.environ}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    pipeline = load_component_from_file(str(target))
    assert pipeline.name == "vlp-pretrain"
    document = yaml.safe_load(target.read_text())
    executors = document["deploymentSpec"]["executors"]
    assert {"exec-start-run", "exec-prepare-data", "exec-pretrain", "exec-evaluate", "exec-register", "exec-finish-run"} <= set(executors)
    defaults = document["root"]["inputDefinitions"]["parameters"]
    assert json.loads(defaults["spec_json"]["defaultValue"])["name"] == "compiled"


def test_tiny_run_then_list_show_models_and_gated_promotion(tmp_path, vlp_home):
    env = {**os.environ, "VLP_HOME": str(vlp_home)}
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "tiny-local",
        "data": {"shapes": {"train_samples": 256, "eval_samples": 64, "shard_size": 128}},
        "train": {"batch_size": 32, "max_steps": 4, "warmup_steps": 1, "log_every": 2, "checkpoint_every": 2},
        "register": {"model_name": "tiny-clip", "gates": ["zeroshot/shapes/acc1 >= 1.01"]},
    }))
    run = vlp("run", str(spec), "--json", env=env, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    outcome = json.loads(run.stdout)
    assert outcome["status"] == "FINISHED" and outcome["model"] == {"name": "tiny-clip", "version": "1"}

    runs = json.loads(vlp("runs", "list", "--json", env=env, cwd=tmp_path).stdout)
    assert [r["run_id"] for r in runs] == [outcome["run_id"]]
    shown = json.loads(vlp("runs", "show", outcome["run_id"], "--json", env=env, cwd=tmp_path).stdout)
    assert shown["status"] == "FINISHED" and shown["params"]["train.max_steps"] == "4"
    assert "zeroshot/shapes/acc1" in shown["metrics"]
    models = json.loads(vlp("models", "list", "--json", env=env, cwd=tmp_path).stdout)
    assert models[0]["name"] == "tiny-clip" and models[0]["aliases"] == ["candidate"]

    refused = vlp("promote", "tiny-clip", "1", "--alias", "champion", env=env, cwd=tmp_path)
    assert refused.returncode == 1 and "zeroshot/shapes/acc1 >= 1.01" in refused.stderr
    missing = vlp("runs", "show", "no-such-run", env=env, cwd=tmp_path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_ui_serves_the_local_store(tmp_path, vlp_home):
    from services import free_port

    port = free_port()
    env = {**os.environ, "VLP_HOME": str(vlp_home)}
    process = subprocess.Popen([VLP, "ui", "--port", str(port)], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "vlp ui did not come up"
                time.sleep(0.3)
        assert (vlp_home / "mlflow.db").exists()
    finally:
        import signal

        # mlflow server runs its web workers as children: stop the whole process group.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
