"""A sweep on the cluster is one KFP pipeline: start-sweep → ParallelFor over the trials (with the sweep's
parallelism) of the workload's own pipeline → finish-sweep as the exit handler; the dry run writes every trial's
Volcano job."""

from __future__ import annotations

import json

import pytest
import yaml
from cluster_harness import REPO, profile_document, run_vlp

QUICKSTART = REPO / "experiments" / "quickstart.yaml"
SWEEP = ["--set", "sweep.parameters={train.lr: [0.001, 0.003, 0.01]}", "--set", "sweep.parallelism=2", "--set", "sweep.metric=zeroshot/shapes/acc1"]


@pytest.fixture(scope="module")
def sweep_dry_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep-dry-run")
    profiles = root / "profiles.yaml"
    profiles.write_text(yaml.safe_dump({"profiles": [profile_document()]}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VLP_PROFILES", str(profiles))
        patch.setenv("VLP_HOME", str(root / "home"))
        code, out, err = run_vlp("submit", str(QUICKSTART), "--profile", "gpu", "--set", "resources.gpus_per_node=1", *SWEEP,
                                 "--dry-run", "--out", str(root / "out"), "--json")
    assert code == 0, err
    return root / "out", json.loads(out)


def test_the_sweep_is_one_pipeline_with_a_parallel_loop_over_the_trials(sweep_dry_run):
    out, _ = sweep_dry_run
    ir, _platform = yaml.safe_load_all((out / "pipeline.yaml").read_text())
    assert ir["pipelineInfo"]["name"] == "vlp-sweep"
    root_tasks = ir["root"]["dag"]["tasks"]
    assert root_tasks["finish-sweep"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    handler = ir["components"][root_tasks["exit-handler-1"]["componentRef"]["name"]]["dag"]["tasks"]
    loop = next(task for task in handler.values() if "parameterIterator" in task)
    assert loop["iteratorPolicy"]["parallelismLimit"] == 2
    assert loop["parameterIterator"]["items"]["inputParameter"].endswith("start-sweep-Output")
    body = ir["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    trial_pipeline = next(task for name, task in body.items() if name != "sweep-trial")
    assert trial_pipeline["componentRef"]["name"] == "comp-vlp-pretrain"
    inner = ir["components"]["comp-vlp-pretrain"]["dag"]["tasks"]
    assert {"finish-run", "exit-handler-1"} <= set(inner)
    assert json.loads(ir["root"]["inputDefinitions"]["parameters"]["spec_json"]["defaultValue"])["sweep"]["parallelism"] == 2


def test_every_trial_s_training_job_is_rendered(sweep_dry_run):
    out, report = sweep_dry_run
    assert set(report["training_jobs"]) == {"trial-1-pretrain", "trial-2-pretrain", "trial-3-pretrain"}
    names = set()
    for number in (1, 2, 3):
        (job,) = yaml.safe_load_all((out / f"trial-{number}-pretrain.volcano.yaml").read_text())
        names.add(job["metadata"]["name"])
        command = job["spec"]["tasks"][0]["template"]["spec"]["containers"][0]["command"][-1]
        assert "-m vlp.platform.workspace vlp.platform.tracking.system_metrics vlp.workloads.train.main" in command
    assert len(names) == 3, "one job name per trial"


@pytest.mark.parametrize("override, message", [
    ("sweep.parameters={train.lrr: [0.1]}", "sweep.parameters.train.lrr: no such field in the experiment"),
    ("sweep.parameters={train.lr: []}", "values: an empty list"),
    ("sweep.parallelism=0", "sweep.parallelism: Input should be greater than or equal to 1"),
])
def test_a_bad_sweep_is_refused_before_anything_is_written(tmp_path, override, message):
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(yaml.safe_dump({"profiles": [profile_document()]}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VLP_PROFILES", str(profiles))
        code, out, err = run_vlp("submit", str(QUICKSTART), "--profile", "gpu", *SWEEP, "--set", override, "--dry-run", "--out", str(tmp_path / "out"))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
