"""`vlp runs compare`: params that differ, metrics side by side, the curves as one PNG, the UI's compare link."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

VLP = str(Path(sys.executable).parent / "vlp")


@pytest.fixture
def two_runs(tmp_path):
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from vlp.platform.tracking.local_store import prepare_tracking_store

    home = tmp_path / "home"
    uri = f"sqlite:///{home / 'mlflow.db'}"
    prepare_tracking_store(uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment("cmp", artifact_location=(home / "mlartifacts").as_uri())
    ids = []
    for lr, accuracy in (("0.001", 0.5), ("0.01", 0.75)):
        run = client.create_run(experiment, run_name=f"lr-{lr}")
        metrics = [Metric("train/loss", 4.0 / (step + 1) / float(lr), 0, step) for step in range(0, 50, 10)]
        metrics.append(Metric("zeroshot/pets/acc1", accuracy, 0, 0))
        client.log_batch(run.info.run_id, metrics=metrics, params=[Param("train.lr", lr), Param("train.batch_size", "64")])
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    return home, experiment, ids


def vlp(home: Path, *args):
    env = {**os.environ, "VLP_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([VLP, *args], env=env, capture_output=True, text=True, timeout=120, cwd=home.parent)


def test_compare_shows_what_differs_side_by_side_with_curves_and_the_ui_link(two_runs, tmp_path):
    from PIL import Image

    home, experiment, (first, second) = two_runs
    plot = tmp_path / "curves.png"
    result = vlp(home, "runs", "compare", first, second, "--json", "--plot", str(plot))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    document = json.loads(result.stdout)
    assert document["params"] == {"train.lr": {first: "0.001", second: "0.01"}}  # batch_size is the same: left out
    assert document["metrics"]["zeroshot/pets/acc1"] == {first: 0.5, second: 0.75}
    assert document["ui"] == (f'http://127.0.0.1:5000/#/compare-runs?runs=%5B%22{first}%22%2C%22{second}%22%5D'
                              f'&experiments=%5B%22{experiment}%22%5D')
    assert document["plot"] == str(plot)
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.size[0] >= 300
    table = vlp(home, "runs", "compare", first, second, "--plot", str(plot))
    assert table.returncode == 0 and "lr-0.001" in table.stdout and "0.7500" in table.stdout and "compare-runs" in table.stdout


def test_compare_a_sweep_s_trials(two_runs):
    from mlflow.tracking import MlflowClient

    home, experiment, (first, second) = two_runs
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    parent = client.create_run(experiment, run_name="sweep", tags={"vlp.sweep": "parent"}).info.run_id
    for number, run_id in ((2, first), (1, second)):
        client.set_tag(run_id, "mlflow.parentRunId", parent)
        client.set_tag(run_id, "vlp.sweep.trial", str(number))
    result = vlp(home, "runs", "compare", "--sweep", parent, "--json")
    assert result.returncode == 0, result.stderr
    assert [run["run_id"] for run in json.loads(result.stdout)["runs"]] == [second, first]
    not_a_sweep = vlp(home, "runs", "compare", "--sweep", first)
    assert not_a_sweep.returncode == 2 and "not a sweep's parent run" in not_a_sweep.stderr


@pytest.mark.parametrize("args, message", [
    (("f" * 32,), "give two or more run ids"),
    (("{first}", "f" * 32), f"run '{'f' * 32}' does not exist"),
    (("{first}", "{first}"), "a run id is given twice"),
])
def test_bad_input_is_one_line_and_exit_2(two_runs, args, message):
    home, _, (first, _) = two_runs
    result = vlp(home, "runs", "compare", *(arg.format(first=first) for arg in args))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [f"vlp: error: runs compare: {message}" + result.stderr.split(message, 1)[1].rstrip("\n")]
