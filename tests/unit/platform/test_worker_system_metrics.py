"""System metrics from a training job's rank-0 worker (cluster runs, a sweep's trials): the wrapper runs the worker's
module as `-m` would and records MLflow's `system/*` metrics on its run; other ranks record nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vlp.platform.runtime import RuntimeContext

WORKER = '''
import json, sys, time
time.sleep(2.5)
json.dump(sys.argv, open(sys.argv[sys.argv.index("--out") + 1], "w"))
'''


@pytest.mark.parametrize("rank, recorded", [("0", True), ("1", False)])
def test_rank_zero_records_system_metrics_on_the_run_while_the_worker_runs(tmp_path, vlp_home, rank, recorded):
    import json

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("metrics", artifact_location=(tmp_path / "artifacts").as_uri()))
    (tmp_path / "fake_worker.py").write_text(WORKER)
    args = ["--run-id", run.info.run_id, "--tracking-uri", uri, "--out", str(tmp_path / "argv.json")]
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "RANK": rank, "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "0.5"}
    result = subprocess.run([sys.executable, "-m", "vlp.platform.tracking.system_metrics", "fake_worker", *args],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "argv.json").read_text())[1:] == args
    metrics = client.get_run(run.info.run_id).data.metrics
    assert any(key.startswith("system/cpu_utilization") for key in metrics) == recorded, metrics


def test_cluster_workers_and_sweep_trials_are_wrapped_local_runs_are_not():
    from vlp.pipelines.steps.launching import worker_launch_request
    from vlp.platform.spec import spec_from_dict

    spec = spec_from_dict({"name": "exp", "train": {"max_steps": 2}})
    local = RuntimeContext(storage_root="/s", tracking_uri="sqlite:///x")
    trial = local.model_copy(update={"sweep_trial": {"parent_run_id": "p", "number": 1}})
    cluster = local.model_copy(update={"scheduler": "kubernetes", "tracking_uri": "http://mlflow:5000"})
    arguments = ["--run-id", "r", "--tracking-uri", "sqlite:///x"]
    assert worker_launch_request(spec, local, "vlp.workloads.train.main", arguments, "train").module == "vlp.workloads.train.main"
    for runtime in (trial, cluster):
        request = worker_launch_request(spec, runtime, "vlp.workloads.train.main", arguments, "train")
        assert (request.module, request.args[:1]) == ("vlp.platform.tracking.system_metrics", ["vlp.workloads.train.main"])
