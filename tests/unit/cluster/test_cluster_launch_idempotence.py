"""A retried or rescheduled training step on Kubernetes launches no second Volcano job: the job is named after the
run, and the step attaches to it while it runs, keeps it once it succeeded, and replaces it only after it failed.
Runs TorchX's real kubernetes scheduler against an in-memory Volcano API (fake_volcano.py)."""

from __future__ import annotations

import pytest
from cluster_harness import profile_document
from fake_volcano import FakeVolcano

from vlp.pipelines.steps import pretrain
from vlp.pipelines.workload_pipelines import pipeline_arguments
from vlp.platform.cluster_profile import ClusterProfile
from vlp.platform.launch import torchx_launcher
from vlp.platform.profiles import profile_runtime
from vlp.platform.spec import spec_from_dict

RUN_KEY = "5eed0123456789abcdef0123456789ab"
NAMESPACE = "vlp"


@pytest.fixture
def volcano(monkeypatch) -> FakeVolcano:
    from torchx.schedulers.kubernetes_scheduler import KubernetesScheduler

    fake = FakeVolcano()
    monkeypatch.setattr(KubernetesScheduler, "_custom_objects_api", lambda self: fake)
    monkeypatch.setattr(torchx_launcher, "CLUSTER_WAIT_SECONDS", 0.01)
    return fake


def request(run_key: str = RUN_KEY) -> torchx_launcher.LaunchRequest:
    spec = spec_from_dict({"name": "tiny", "train": {"max_steps": 10}, "resources": {"nodes": 2}})
    runtime = profile_runtime(ClusterProfile.model_validate(profile_document()), run_key=run_key)
    arguments = pipeline_arguments(spec, runtime)
    built = pretrain.launch_request(arguments["spec_json"], arguments["runtime_json"], "run-1", "s3://b/shards")
    # The real step validates the job against the cluster's API during the dry run; the fake has no validation.
    return torchx_launcher.LaunchRequest(**{**built.__dict__, "scheduler_cfg": {**built.scheduler_cfg, "validate_spec": False}})


def test_the_job_is_named_after_the_run_and_the_same_for_every_attempt():
    first, again, other = request(), request(), request(run_key="0ther0123456789abcdef0123456789a")
    assert first.name == again.name == "tiny-train-5eed0123"
    assert other.name != first.name
    job = torchx_launcher.dryrun(first).request.resource
    assert job["metadata"]["name"] == first.name
    for task in job["spec"]["tasks"]:
        assert len(f"{job['metadata']['name']}-{task['name']}-0") <= 63


def test_first_attempt_creates_the_job_and_waits_for_it(volcano):
    volcano.phases_after_create = ["Completed"]
    result = torchx_launcher.launch_and_wait(request(), stream_logs=False)
    assert result.succeeded and not result.attached
    assert volcano.created() == ["tiny-train-5eed0123"]
    assert result.app_handle.endswith(f"/{NAMESPACE}:tiny-train-5eed0123")


def test_a_retried_step_attaches_to_the_running_job_instead_of_launching_another(volcano):
    volcano.add_job(NAMESPACE, "tiny-train-5eed0123", "Running", "Running", "Completed")
    result = torchx_launcher.launch_and_wait(request(), stream_logs=False)
    assert result.succeeded and result.attached
    assert volcano.created() == []
    assert [call for call, _ in volcano.calls].count("status") == 3  # checked, then waited on until it completed


def test_a_finished_job_is_not_run_again(volcano):
    volcano.add_job(NAMESPACE, "tiny-train-5eed0123", "Completed")
    result = torchx_launcher.launch_and_wait(request(), stream_logs=False)
    assert result.succeeded and result.attached
    assert volcano.created() == [] and ("delete", "tiny-train-5eed0123") not in volcano.calls


def test_a_failed_job_is_replaced_by_a_new_one_of_the_same_name(volcano):
    volcano.add_job(NAMESPACE, "tiny-train-5eed0123", "Failed")
    volcano.phases_after_create = ["Completed"]
    result = torchx_launcher.launch_and_wait(request(), stream_logs=False)
    assert result.succeeded and not result.attached
    assert [call for call in volcano.calls if call[0] != "status"] == [("delete", "tiny-train-5eed0123"), ("create", "tiny-train-5eed0123")]


def test_a_job_created_meanwhile_by_another_attempt_is_attached_to(volcano, monkeypatch):
    # Between this attempt's check (no job) and its create, another attempt created the job: the create gets 409.
    original = volcano.get_namespaced_custom_object_status
    checks = []

    def status(*args, **kwargs):
        if not checks:
            checks.append(1)
            volcano.add_job(NAMESPACE, "tiny-train-5eed0123", "Completed")
            from kubernetes.client.rest import ApiException

            raise ApiException(status=404, reason="Not Found")
        return original(*args, **kwargs)

    monkeypatch.setattr(volcano, "get_namespaced_custom_object_status", status)
    result = torchx_launcher.launch_and_wait(request(), stream_logs=False)
    assert result.succeeded and result.attached
    assert volcano.created() == ["tiny-train-5eed0123"]  # tried once, refused with 409 Conflict
    assert list(volcano.jobs) == [(NAMESPACE, "tiny-train-5eed0123")]
