"""A DG study on the cluster: the step table gives its training steps (dg-pretrained, dg-train) the training
deadline and no KFP retry, and the dry run writes every Volcano job the study launches, one per held-out domain."""

from __future__ import annotations

import json

import pytest
import yaml
from cluster_harness import REPO, profile_document, run_vlp
from google.protobuf import json_format

from vlp.pipelines import components, step_table

DG_EXPERIMENT = REPO / "experiments" / "dg-shapes.yaml"
DOMAINS = ("photo", "cartoon", "sketch", "painting")


@pytest.fixture(scope="module")
def dg_dry_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dg-dry-run")
    profiles = root / "profiles.yaml"
    profiles.write_text(yaml.safe_dump({"profiles": [profile_document()]}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VLP_PROFILES", str(profiles))
        patch.setenv("VLP_HOME", str(root / "home"))
        code, out, err = run_vlp("submit", str(DG_EXPERIMENT), "--profile", "gpu", "--set", "resources.gpus_per_node=1", "--dry-run", "--out", str(root / "out"), "--json")
    assert code == 0, err
    return root / "out", json.loads(out)


def test_every_job_the_study_launches_is_written(dg_dry_run):
    out, report = dg_dry_run
    expected = {"dg-pretrained", *(f"dg-train-{domain}" for domain in DOMAINS)}
    assert set(report["training_jobs"]) == expected
    assert sorted(path.name for path in out.iterdir()) == sorted(["pipeline.yaml", *(f"{job}.volcano.yaml" for job in expected)])
    names = set()
    for domain in DOMAINS:
        (job,) = yaml.safe_load_all((out / f"dg-train-{domain}.volcano.yaml").read_text())
        command = job["spec"]["tasks"][0]["template"]["spec"]["containers"][0]["command"][-1]
        assert "-m vlp.platform.workspace vlp.platform.tracking.system_metrics vlp.workloads.dg.main" in command and f"--held-out {domain}" in command
        names.add(job["metadata"]["name"])
    assert len(names) == len(DOMAINS), "one job name per held-out domain"
    (pretraining,) = yaml.safe_load_all((out / "dg-pretrained.volcano.yaml").read_text())
    assert "-m vlp.platform.workspace vlp.platform.tracking.system_metrics vlp.workloads.train.main" in pretraining["spec"]["tasks"][0]["template"]["spec"]["containers"][0]["command"][-1]


def test_training_steps_get_the_training_deadline_and_no_kfp_retry(dg_dry_run):
    from kfp import components as kfp_components

    out, _ = dg_dry_run
    loaded = kfp_components.load_component_from_file(str(out / "pipeline.yaml"))
    executors = json_format.MessageToDict(loaded.platform_spec)["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    deadlines = {name.removeprefix("exec-"): int(executor["activeDeadlineSeconds"]) for name, executor in executors.items()}
    profile = profile_document()["steps"]
    assert deadlines == {
        "start-run": profile["timeout_seconds"], "dg-data": profile["timeout_seconds"], "dg-domains": profile["timeout_seconds"],
        "dg-pretrained": profile["train_timeout_seconds"], "dg-train": profile["train_timeout_seconds"],
        "dg-report": profile["timeout_seconds"], "finish-run": profile["timeout_seconds"],
    }
    pipeline_spec = next(doc for doc in yaml.safe_load_all((out / "pipeline.yaml").read_text()) if doc)
    tasks = dict(pipeline_spec["root"]["dag"]["tasks"])
    for component in pipeline_spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    retried = {name for name, task in tasks.items() if "retryPolicy" in task}
    assert retried == {"dg-data", "dg-domains", "dg-report"}


def test_the_table_declares_every_component_once():
    declared = [step.function for workload in step_table.PIPELINE_STEPS for step in step_table.steps_of(workload)]
    declared += [step.function for step in step_table.SWEEP_STEPS]  # a sweep's own steps, around the workload's pipeline
    assert all(step.kind == "light" for step in step_table.SWEEP_STEPS)
    functions = {value for value in vars(components).values() if callable(value) and getattr(value, "__module__", "") == components.__name__}
    functions -= {components.as_component, components.step_factory}
    assert set(declared) == functions, "every component function is a step of some pipeline"
    for workload in step_table.PIPELINE_STEPS:
        steps = step_table.steps_of(workload)
        assert len({step.name for step in steps}) == len(steps)
        for step in steps:
            assert (step.kind == "train") == (step.worker_module is not None) == (step.launches is not None), step.name
            assert not (step.kind == "train" and step.retried), f"{step.name}: Volcano owns a training job's restarts"
