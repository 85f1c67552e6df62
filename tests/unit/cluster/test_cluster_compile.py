"""`vlp submit --dry-run`: the compiled pipeline loads back with kfp and carries each step's
Kubernetes settings; the Volcano job of the training step has the spec's shape; nothing is contacted
and no credential from the environment appears anywhere."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml
from cluster_harness import BASE_PROFILE, CANARY, CANARY_ENV, EXPERIMENT, TOKEN, profile_document, run_vlp
from google.protobuf import json_format

from vlp.platform.runtime import RuntimeContext

STEPS = ("start-run", "prepare-data", "pretrain", "evaluate", "register", "finish-run")
OVERRIDES = ("--set", "team=vision", "--set", "train.batch_size=192", "--set", "resources.nodes=3", "--set", "resources.procs_per_node=4", "--set", "resources.gpus_per_node=4")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """One dry run for the module, with the network closed: any connection attempt fails the run."""
    root = tmp_path_factory.mktemp("dry-run")
    profiles = root / "profiles.yaml"
    profiles.write_text(yaml.safe_dump({"profiles": [profile_document()]}))

    def no_network(*args, **kwargs):
        raise AssertionError(f"the dry run tried to connect: {args}")

    with pytest.MonkeyPatch.context() as patch:
        for name in CANARY_ENV:
            patch.setenv(name, CANARY)
        patch.setenv("VLP_KFP_TOKEN", TOKEN)
        patch.setenv("VLP_PROFILES", str(profiles))
        patch.setattr(socket.socket, "connect", no_network)
        result = run_vlp("submit", str(EXPERIMENT), "--profile", "gpu", *OVERRIDES, "--dry-run", "--out", str(root / "out"), "--json")
    code, out, err = result
    assert code == 0, err
    return {"out": root / "out", "stdout": out, "stderr": err, "report": json.loads(out)}


def test_writes_the_pipeline_and_one_volcano_job_per_training_step(dry_run):
    assert sorted(path.name for path in dry_run["out"].iterdir()) == ["pipeline.yaml", "pretrain.volcano.yaml"]
    assert "run_id" not in dry_run["report"], "a dry run submits nothing"


def test_pipeline_loads_back_with_kfp(dry_run):
    from kfp import components

    component = components.load_component_from_file(str(dry_run["out"] / "pipeline.yaml"))
    assert component.name == "vlp-pretrain"
    assert set(component.component_spec.inputs) == {"spec_json", "runtime_json"}
    runtime = RuntimeContext.model_validate_json(component.component_spec.inputs["runtime_json"].default)
    assert runtime.scheduler == "kubernetes"
    assert runtime.scheduler_cfg == {"queue": "vlp-vision", "namespace": "vlp", "service_account": "vlp-trainer", "priority_class": "research-high"}
    assert runtime.run_key == dry_run["report"]["run_key"]
    assert runtime.image == BASE_PROFILE["image"]
    assert runtime.tracking_uri == BASE_PROFILE["mlflow"]["tracking_uri"]


@pytest.fixture(scope="module")
def executors(dry_run) -> dict:
    from kfp import components

    component = components.load_component_from_file(str(dry_run["out"] / "pipeline.yaml"))
    platform = json_format.MessageToDict(component.platform_spec)
    return platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_every_step_gets_credentials_from_secrets(executors):
    assert set(executors) == {f"exec-{step}" for step in STEPS}
    for name, executor in executors.items():
        secrets = {item["secretName"]: {k["secretKey"]: k["envVar"] for k in item["keyToEnv"]} for item in executor["secretAsEnv"]}
        assert secrets == {
            "vlp-s3": {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"},
            "vlp-mlflow-pipelines": {"username": "MLFLOW_TRACKING_USERNAME", "password": "MLFLOW_TRACKING_PASSWORD"},
        }, name


def test_every_step_gets_placement_labels_and_a_deadline(executors, dry_run):
    spec_hash_label = None
    for name, executor in executors.items():
        assert executor["nodeSelector"]["labels"] == {"pool": "cpu"}, name
        assert executor["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}], name
        labels = executor["podMetadata"]["labels"]
        assert labels["vlp.io/team"] == "vision" and labels["vlp.io/experiment"] == "quickstart", name
        assert labels["vlp.io/run-key"] == dry_run["report"]["run_key"], name
        spec_hash_label = spec_hash_label or labels["vlp.io/spec-hash"]
        assert labels["vlp.io/spec-hash"] == spec_hash_label and len(spec_hash_label) == 12
        expected = "86400" if name == "exec-pretrain" else "1800"
        assert str(executor["activeDeadlineSeconds"]) == expected, name


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _tasks(pipeline_spec: dict) -> dict[str, dict]:
    tasks = dict(pipeline_spec["root"]["dag"]["tasks"])
    for component in pipeline_spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def test_retries_on_data_eval_register_only_and_no_gpu_on_step_pods(dry_run):
    pipeline_spec = _documents(dry_run["out"] / "pipeline.yaml")[0]
    tasks = _tasks(pipeline_spec)
    retried = {name: task["retryPolicy"]["maxRetryCount"] for name, task in tasks.items() if "retryPolicy" in task}
    assert retried == {"prepare-data": 3, "evaluate": 3, "register": 3}
    for name, executor in pipeline_spec["deploymentSpec"]["executors"].items():
        container = executor["container"]
        assert container["image"] == BASE_PROFILE["image"], name
        resources = container["resources"]
        assert resources["resourceCpuRequest"] == "250m" and resources["resourceMemoryLimit"] == "8Gi", name
        assert "accelerator" not in resources, f"{name}: the step pods only orchestrate; GPUs go to the Volcano job"
        env = {item["name"]: item["value"] for item in container.get("env", [])}
        assert env == {"AWS_ENDPOINT_URL": "http://minio.storage:9000", "AWS_DEFAULT_REGION": "eu-west-1"}, name


@pytest.fixture(scope="module")
def volcano_job(dry_run) -> dict:
    (job,) = _documents(dry_run["out"] / "pretrain.volcano.yaml")
    return job


def test_volcano_job_has_the_spec_shape(volcano_job, dry_run):
    assert volcano_job["apiVersion"] == "batch.volcano.sh/v1alpha1" and volcano_job["kind"] == "Job"
    assert volcano_job["metadata"]["namespace"] == "vlp"
    assert volcano_job["metadata"]["labels"]["vlp.io/team"] == "vision"
    spec = volcano_job["spec"]
    assert spec["schedulerName"] == "volcano"
    assert spec["queue"] == "vlp-vision"
    assert spec["priorityClassName"] == "research-high"
    assert len(spec["tasks"]) == 3, "one task per node"
    for task in spec["tasks"]:
        assert task["replicas"] == 1
        pod = task["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] == BASE_PROFILE["image"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
        assert container["resources"]["requests"]["nvidia.com/gpu"] == "4"
        assert "--nnodes 3 --nproc_per_node 4" in container["command"][-1]
        assert "-m vlp.platform.workspace vlp.platform.tracking.system_metrics vlp.workloads.train.main" in container["command"][-1], "the worker runs the shipped tree (system metrics from rank 0)"
        assert pod["serviceAccountName"] == "vlp-trainer"
        assert pod["nodeSelector"] == {"node.kubernetes.io/instance-type": "p4d.24xlarge", "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
        assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        env = {item["name"]: item for item in container["env"]}
        assert env["AWS_SECRET_ACCESS_KEY"] == {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": "vlp-s3", "key": "AWS_SECRET_ACCESS_KEY"}}}
        assert env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "vlp-mlflow-pipelines", "key": "password"}
        assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio.storage:9000"
        assert env["VLP_WORKSPACE_URI"]["value"] == dry_run["report"]["workspace"]["uri"]
        assert env["VLP_WORKSPACE_WHEEL_SHA256"]["value"] == dry_run["report"]["workspace"]["wheel_sha256"]
        assert task["template"]["metadata"]["labels"]["vlp.io/experiment"] == "quickstart"


def test_no_secret_value_anywhere(dry_run):
    for path in dry_run["out"].iterdir():
        text = path.read_text()
        assert CANARY not in text and TOKEN not in text, path.name
    for text in (dry_run["stdout"], dry_run["stderr"]):
        assert CANARY not in text and TOKEN not in text
