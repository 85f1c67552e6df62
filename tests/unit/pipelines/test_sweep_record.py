"""The sweep's record in MLflow, as its pipeline's exit step leaves it: the best finished child tagged, a trial
left RUNNING closed as FAILED, a trial that never opened its run listed as FAILED, the table and the metric per
trial on the parent; and the pieces of the local run (trial log names, kfp.local's loop cap lifted)."""

from __future__ import annotations

import json

import pytest

from vlp.platform.runtime import RuntimeContext
from vlp.platform.spec import spec_from_dict
from vlp.platform.tracking import sweeps
from vlp.platform.tracking.runs import client, start_run

METRIC = "zeroshot/shapes/acc1"


@pytest.fixture
def sweep_runs(tmp_path, vlp_home):
    """A parent and three of four trials' child runs: 1 FINISHED 0.4, 2 FINISHED 0.7, 3 left RUNNING, 4 never opened."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = spec_from_dict({"name": "sw", "train": {"max_steps": 2},
                           "sweep": {"parameters": {"train.lr": [0.001, 0.003, 0.01, 0.03]}, "metric": METRIC, "parallelism": 2}})
    runtime = RuntimeContext(storage_root=str(tmp_path / "store"), tracking_uri=uri, run_key="a" * 32)
    parent = sweeps.open_parent_run(spec, runtime)
    mlflow_client = client(uri)
    children = {}
    for number, status, value in ((1, "FINISHED", 0.4), (2, "FINISHED", 0.7), (3, "RUNNING", None)):
        run_id = start_run("sw", f"sw-trial-{number}", {"mlflow.parentRunId": parent, sweeps.TRIAL_TAG: str(number),
                                                         "vlp.run_key": sweeps.trial_run_key(runtime.run_key, number)}, {}, uri)
        if value is not None:
            mlflow_client.log_metric(run_id, METRIC, value)
        if status != "RUNNING":
            mlflow_client.set_terminated(run_id, status)
        children[number] = run_id
    return spec, runtime, parent, children


def test_closing_tags_the_best_fails_the_unfinished_and_logs_the_table(sweep_runs, tmp_path):
    spec, runtime, parent, children = sweep_runs
    assert sweeps.open_parent_run(spec, runtime) == parent, "a retried start-sweep finds the parent again"
    outcome = sweeps.close_sweep(spec, runtime, "FAILED")
    assert [(row["number"], row["run_id"], row["status"], row["value"]) for row in outcome.trials] == [
        (1, children[1], "FINISHED", 0.4), (2, children[2], "FINISHED", 0.7), (3, children[3], "FAILED", None), (4, None, "FAILED", None)]
    assert outcome.best_run_id == children[2]
    mlflow_client = client(runtime.tracking_uri)
    record = mlflow_client.get_run(parent)
    assert record.info.status == "FAILED" and record.data.tags[sweeps.BEST_RUN_TAG] == children[2]
    assert mlflow_client.get_run(children[2]).data.tags[sweeps.BEST_TAG] == "true"
    assert sweeps.BEST_TAG not in mlflow_client.get_run(children[1]).data.tags
    assert mlflow_client.get_run(children[3]).info.status == "FAILED"
    assert [(point.step, point.value) for point in mlflow_client.get_metric_history(parent, METRIC)] == [(1, 0.4), (2, 0.7)]
    table = mlflow_client.download_artifacts(parent, sweeps.TABLE_ARTIFACT, str(tmp_path))
    lines = open(table).read().splitlines()
    assert lines[0] == f"| trial | train.lr | status | {METRIC} | run |"
    assert lines[3] == f"| 2 (best) | 0.003 | FINISHED | 0.7000 | {children[2]} |" and lines[5] == "| 4 | 0.03 | FAILED | - | - |"


def test_a_minimizing_sweep_picks_the_smallest_and_reads_back_the_same(sweep_runs):
    spec, runtime, _, children = sweep_runs
    spec = spec.model_copy(update={"sweep": spec.sweep.model_copy(update={"goal": "minimize"})})
    assert sweeps.read_sweep(spec, runtime).best_run_id == children[1]


def test_trial_run_keys_are_stable_and_distinct():
    keys = [sweeps.trial_run_key("b" * 32, number) for number in (1, 2, 3)]
    assert keys == [sweeps.trial_run_key("b" * 32, number) for number in (1, 2, 3)] and len(set(keys)) == 3
    assert len({key[:8] for key in keys}) == 3, "the first 8 characters name the trial's jobs"


def test_a_trial_s_steps_log_under_its_number():
    from vlp.platform.backends.step_logs import step_name

    runtime = RuntimeContext(storage_root="/s", tracking_uri="sqlite:///x", sweep_trial={"parent_run_id": "p", "number": 3})
    trial_input = json.dumps({"inputs": {"parameterValues": {"runtime_json": runtime.model_dump_json()}}})
    plain_input = json.dumps({"inputs": {"parameterValues": {"runtime_json": runtime.model_copy(update={"sweep_trial": None}).model_dump_json()}}})
    assert step_name(["--executor_input", trial_input, "--function_to_execute", "prepare_data"]) == "trial-3-prepare-data"
    assert step_name(["--executor_input", plain_input, "--function_to_execute", "prepare_data"]) == "prepare-data"
    assert step_name(["--function_to_execute", "start_sweep"]) == "start-sweep"


def test_the_sweep_s_parallelism_lifts_kfp_local_s_cap_of_two_while_it_runs():
    # Fails when kfp moves the cap: then the sweep's parallelism needs another way through kfp.local.
    from kfp.local.orchestrator.enhanced_dag_orchestrator import ParallelExecutor

    from vlp.pipelines.local_run import _kfp_local_parallelism

    assert ParallelExecutor().conservative_max == 2
    with _kfp_local_parallelism(4):
        assert ParallelExecutor().conservative_max == 4
    assert ParallelExecutor().conservative_max == 2
