"""`vlp run` of an experiment with a `sweep:` section: the sweep pipeline under kfp.local, its trials in a
ParallelFor as child runs of one parent run, the best one tagged, the table logged on the parent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

VLP = str(Path(sys.executable).parent / "vlp")


def test_a_sweep_runs_its_trials_under_one_parent_and_tags_the_best(tmp_path):
    from mlflow.tracking import MlflowClient

    home = tmp_path / "home"
    env = {**os.environ, "VLP_HOME": str(home), "PYTHONSAFEPATH": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tiny-sweep",
        "data": {"shapes": {"train_samples": 128, "eval_samples": 32, "shard_size": 64}},
        "train": {"batch_size": 32, "max_steps": 2, "warmup_steps": 1, "log_every": 1, "checkpoint_every": 2},
        "eval": {"linear_probe": False, "segmentation": False, "modality_gap": False, "plots": False},
        "register": {"enabled": False},
        "sweep": {"parameters": {"train.lr": [0.001, 0.01]}, "parallelism": 2, "metric": "zeroshot/shapes/acc1"},
    }))
    result = subprocess.run([VLP, "run", str(path), "--json"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout)
    assert [(trial["number"], trial["values"], trial["status"]) for trial in outcome["trials"]] == [
        (1, {"train.lr": 0.001}, "FINISHED"), (2, {"train.lr": 0.01}, "FINISHED")]
    assert sum("trial " in line for line in result.stderr.splitlines()) == 2
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    parent = client.get_run(outcome["parent_run_id"])
    children = {trial["run_id"]: client.get_run(trial["run_id"]) for trial in outcome["trials"]}
    assert all(child.data.tags["mlflow.parentRunId"] == parent.info.run_id for child in children.values())
    assert {child.data.params["train.lr"] for child in children.values()} == {"0.001", "0.01"}
    values = {trial["run_id"]: trial["value"] for trial in outcome["trials"]}
    best = max(values, key=values.get)
    assert outcome["best_run_id"] == best == parent.data.tags["vlp.sweep.best_run"]
    assert children[best].data.tags["vlp.sweep.best"] == "true"
    assert sorted(point.step for point in client.get_metric_history(parent.info.run_id, "zeroshot/shapes/acc1")) == [1, 2]
    table = Path(client.download_artifacts(parent.info.run_id, "sweep/table.md", str(tmp_path))).read_text()
    assert "| trial | train.lr | status | zeroshot/shapes/acc1 | run |" in table and "(best)" in table
    assert parent.info.status == "FINISHED"
    (logs,) = (home / "logs").iterdir()
    names = {path.name for path in logs.iterdir()}
    assert {"start-sweep.log", "finish-sweep.log", "trial-1-pretrain.log", "trial-2-pretrain.log", "trial-2-finish-run.log"} <= names
    assert all(children[trial["run_id"]].data.tags["vlp.sweep.trial"] == str(trial["number"]) for trial in outcome["trials"])
