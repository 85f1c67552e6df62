"""`vlp submit --dry-run` of every experiment file, on the example profiles and on the profile the chart renders from
values-production.yaml: the pipeline loads back with kfp, and every Volcano job (and the PodGroup Volcano makes of
it) is valid against Volcano's published CRDs with nothing pruned, fits its queue, and gets the multi-node details
right (rendezvous, /dev/shm, NCCL environment, GPU resource names, replicas spread over nodes, restarts owned once)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cluster_harness import REPO, run_vlp
from crd_schema import crd_source, validation_errors

from vlp.platform.cluster_checks import check_volcano_job, parse_quantity, volcano_podgroup
from vlp.platform.cluster_profile import ClusterProfile

EXPERIMENTS = sorted((REPO / "experiments").glob("*.yaml"))
CHART = REPO / "charts" / "vlp"
# The production nodes (p4d.24xlarge) hold 8 GPUs: GPU profiles run one pod per node, one process per GPU.
NODE_GPUS = 8


def _helm(*args: str) -> str:
    binary = Path(sys.executable).parent / "helm"
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60, check=True).stdout


@pytest.fixture(scope="module")
def chart_production():
    docs = [doc for doc in yaml.safe_load_all(_helm("template", "vlp", str(CHART), "-n", "vlp", "-f", str(CHART / "values-production.yaml"))) if doc]
    (configmap,) = [doc for doc in docs if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].endswith("-profile")]
    return {
        "profile": yaml.safe_load(configmap["data"]["profile.yaml"]),
        "queues": {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "Queue"},
        "priority_classes": {doc["metadata"]["name"] for doc in docs if doc["kind"] == "PriorityClass"},
    }


@pytest.fixture(scope="module")
def profiles(chart_production, tmp_path_factory) -> dict[str, dict]:
    examples = yaml.safe_load((REPO / "examples" / "profiles.yaml").read_text())["profiles"]
    documents = {profile["name"]: profile for profile in examples}
    documents[chart_production["profile"]["name"]] = chart_production["profile"]
    return documents


@pytest.fixture(scope="module")
def profiles_file(profiles, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("profiles") / "profiles.yaml"
    path.write_text(yaml.safe_dump({"profiles": list(profiles.values())}))
    return path


def _shape(profile: ClusterProfile) -> tuple[str, ...]:
    if not profile.targets_gpu_nodes:
        return ()
    return ("--set", f"resources.gpus_per_node={NODE_GPUS}", "--set", f"resources.procs_per_node={NODE_GPUS}")


def _dry_run(profiles_file: Path, out: Path, experiment: Path, profile_name: str, *overrides: str) -> dict:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VLP_PROFILES", str(profiles_file))
        code, stdout, err = run_vlp("submit", str(experiment), "--profile", profile_name, *overrides, "--dry-run", "--out", str(out), "--json")
    assert code == 0, f"{experiment.name} on {profile_name}: {err}"
    return json.loads(stdout)


CASES = [(experiment, "gpu") for experiment in EXPERIMENTS] + [
    (REPO / "experiments" / name, profile) for name in ("quickstart.yaml", "dg-shapes.yaml") for profile in ("dev", "prod")
]


@pytest.mark.parametrize(("experiment", "profile_name"), CASES, ids=[f"{e.stem}-on-{p}" for e, p in CASES])
def test_every_job_is_valid_and_makes_sense(experiment, profile_name, profiles, profiles_file, chart_production, tmp_path):
    profile = ClusterProfile.model_validate(profiles[profile_name])
    report = _dry_run(profiles_file, tmp_path, experiment, profile_name, *_shape(profile))
    from kfp import components

    assert components.load_component_from_file(report["pipeline"]).name in ("vlp-pretrain", "vlp-dg")
    assert report["training_jobs"], "every pipeline launches at least one training job"
    for key, path in report["training_jobs"].items():
        (job,) = yaml.safe_load_all(Path(path).read_text())
        assert validation_errors(job) == [], f"{key} against {crd_source('batch.volcano.sh/v1alpha1', 'Job')}"
        podgroup = volcano_podgroup(job)
        assert validation_errors(podgroup) == [], key
        queue = job["spec"]["queue"]
        check_volcano_job(job, profile.queue_capability[queue])
        if profile_name == "prod":
            assert queue in chart_production["queues"], f"{key}: queue {queue} is not one the chart creates"
        _check_multi_node_details(job, profile, key)
        priority_class = job["spec"].get("priorityClassName")
        if priority_class:
            assert priority_class in chart_production["priority_classes"], f"{key}: PriorityClass {priority_class} is not in the chart"


def _check_multi_node_details(job: dict, profile: ClusterProfile, key: str) -> None:
    spec = job["spec"]
    assert set(spec["plugins"]) >= {"svc", "env"}, "svc gives every pod the others' host names, env their indexes"
    for index, task in enumerate(spec["tasks"]):
        pod = task["template"]["spec"]
        (container,) = pod["containers"]
        command = container["command"][-1]
        # torchrun's c10d rendezvous on replica 0, whose address Volcano's svc plugin publishes to the others.
        assert "--rdzv_backend c10d" in command and "--max-restarts" not in command, key
        role = task["template"]["metadata"]["labels"]["torchx.pytorch.org/role-name"]
        host = "TORCHX_RANK0_HOST" if index == 0 else f"VC_{role.upper()}_0_HOSTS"
        endpoint = f"${{{host}:=localhost}}:29500" if len(spec["tasks"]) > 1 else "localhost:0"
        assert f"--rdzv_endpoint {endpoint} " in command, key
        (shm,) = [volume for volume in pod["volumes"] if volume.get("emptyDir", {}).get("medium") == "Memory"]
        assert {"mountPath": "/dev/shm", "name": shm["name"]} in container["volumeMounts"]
        assert parse_quantity(shm["emptyDir"]["sizeLimit"]) >= parse_quantity("1Gi"), "room for the loader workers' batches"
        env = {item["name"]: item.get("value") for item in container["env"]}
        limits = container["resources"]["limits"]
        anti_affinity = pod["affinity"]["podAntiAffinity"]
        if profile.targets_gpu_nodes:
            assert limits[profile.gpu_resource] == str(NODE_GPUS) and container["resources"]["requests"][profile.gpu_resource] == str(NODE_GPUS)
            assert pod["nodeSelector"][profile.accelerator_label] == profile.accelerator_type
            assert {name: env[name] for name in profile.training_env} == profile.training_env, "NCCL settings reach every worker"
            (term,) = anti_affinity["requiredDuringSchedulingIgnoredDuringExecution"]
        else:
            assert not any("gpu" in name for name in limits)
            (preferred,) = anti_affinity["preferredDuringSchedulingIgnoredDuringExecution"]
            term = preferred["podAffinityTerm"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert term["labelSelector"]["matchLabels"] == {"app.kubernetes.io/instance": task["template"]["metadata"]["labels"]["app.kubernetes.io/instance"]}


def test_restarts_have_one_owner(profiles, profiles_file, tmp_path):
    """Volcano restarts the job (`maxRetry`, RestartJob on a failed pod); torchrun is not told to restart as well."""
    report = _dry_run(profiles_file, tmp_path, REPO / "experiments" / "quickstart.yaml", "dev", "--set", "resources.max_restarts=3")
    (job,) = yaml.safe_load_all(Path(report["training_jobs"]["pretrain"]).read_text())
    assert job["spec"]["maxRetry"] == 3
    for task in job["spec"]["tasks"]:
        assert {"event": "PodFailed", "action": "RestartJob"} in task["policies"]
        assert "--max-restarts" not in task["template"]["spec"]["containers"][0]["command"][-1]
    from vlp.platform.launch.torchx_launcher import LaunchRequest, build_appdef

    local = build_appdef(LaunchRequest(module="m", args=[], nodes=2, procs_per_node=1, max_restarts=3))
    (role,) = local.roles
    assert role.max_retries == 0 and "--max-restarts 3" in role.args[1], "locally torchrun is the one owner"


def test_every_queue_quota_is_reachable(chart_production, profiles, profiles_file, tmp_path):
    """A job as large as a queue's GPU quota fits its CPU and memory too; one node more is refused in one line."""
    profile = ClusterProfile.model_validate(profiles["prod"])
    for team, queue in profile.team_queues.items():
        capability = chart_production["queues"][queue]["spec"]["capability"]
        nodes = int(parse_quantity(capability[profile.gpu_resource])) // NODE_GPUS
        shape = (*_shape(profile), "--set", f"team={team}", "--set", f"train.batch_size={nodes * NODE_GPUS * 8}")
        _dry_run(profiles_file, tmp_path / team, REPO / "experiments" / "quickstart.yaml", "prod", *shape, "--set", f"resources.nodes={nodes}")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("VLP_PROFILES", str(profiles_file))
            code, _, err = run_vlp("submit", str(REPO / "experiments" / "quickstart.yaml"), "--profile", "prod", *shape,
                                   "--set", f"resources.nodes={nodes + 1}", "--set", f"train.batch_size={(nodes + 1) * NODE_GPUS * 8}",
                                   "--dry-run", "--out", str(tmp_path / "refused"))
        assert code == 2 and f"queue {queue}" in err, err


def test_chart_objects_are_valid_against_the_crds(chart_production):
    for name, queue in chart_production["queues"].items():
        assert validation_errors(queue) == [], name


def test_validation_is_strict(profiles, profiles_file, tmp_path):
    """An undeclared field (pruned by the API server), a wrong type and a bad name are all errors."""
    report = _dry_run(profiles_file, tmp_path, REPO / "experiments" / "quickstart.yaml", "dev")
    (job,) = yaml.safe_load_all(Path(report["training_jobs"]["pretrain"]).read_text())
    assert validation_errors(job) == []
    pruned = copy.deepcopy(job)
    pruned["spec"]["tasks"][0]["template"]["spec"]["containers"][0]["gpus"] = 1
    wrong_type = copy.deepcopy(job)
    wrong_type["spec"]["minAvailable"] = "two"
    bad_name = copy.deepcopy(job)
    bad_name["metadata"]["name"] = "Quickstart_Train"
    bad_quantity = copy.deepcopy(job)
    bad_quantity["spec"]["tasks"][0]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "eight"
    for broken in (pruned, wrong_type, bad_name, bad_quantity):
        assert validation_errors(broken), broken["metadata"]["name"]
