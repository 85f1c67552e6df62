"""The training step on Kubernetes: the LaunchRequest it builds from spec and runtime, the Volcano job
TorchX renders from it, and how `launch_and_wait` submits, reports failure and cancels."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from cluster_harness import CANARY, profile_document

from vlp.pipelines.steps import pretrain
from vlp.pipelines.submit import training_jobs
from vlp.pipelines.workload_pipelines import pipeline_arguments
from vlp.platform.cluster_profile import ClusterProfile
from vlp.platform.launch import torchx_launcher
from vlp.platform.profiles import profile_runtime
from vlp.platform.spec import spec_from_dict

TRAIN = {"max_steps": 10}


def _job(spec_document: dict, **profile_changes) -> dict:
    spec = spec_from_dict({"name": "tiny", "train": TRAIN, **spec_document})
    runtime = profile_runtime(ClusterProfile.model_validate(profile_document(**profile_changes)), team=spec.team)
    return training_jobs(spec, runtime)["pretrain"]


def _pods(job: dict) -> list[dict]:
    return [task["template"]["spec"] for task in job["spec"]["tasks"]]


def test_other_gpu_vendors_get_their_resource_name():
    job = _job({"resources": {"nodes": 2, "gpus_per_node": 8}}, gpu_resource="amd.com/gpu", accelerator_type="MI300X",
               accelerator_label="amd.com/gpu.product-name")
    for pod in _pods(job):
        resources = pod["containers"][0]["resources"]
        assert resources["limits"]["amd.com/gpu"] == "8" and "nvidia.com/gpu" not in resources["limits"]
        assert "nvidia.com/gpu" not in resources["requests"]
        assert pod["nodeSelector"]["amd.com/gpu.product-name"] == "MI300X"


def test_cpu_jobs_ask_for_no_gpu_and_no_accelerator():
    job = _job({"resources": {"nodes": 1, "procs_per_node": 2}})
    (pod,) = _pods(job)
    limits = pod["containers"][0]["resources"]["limits"]
    assert not any("gpu" in name for name in limits)
    assert "nvidia.com/gpu.product" not in pod["nodeSelector"]
    assert limits["cpu"] == "8000m" and limits["memory"] == "32768M", "profile's worker_cpu / worker_memory_mb"


def test_long_experiment_names_still_give_valid_pod_names():
    job = _job({"name": "a" * 63, "resources": {"nodes": 16}})
    for task in job["spec"]["tasks"]:
        assert len(f"{job['metadata']['name']}-{task['name']}-0") <= 63


def test_launch_request_on_kubernetes_carries_no_local_credentials():
    spec = spec_from_dict({"name": "tiny", "team": "vision", "train": TRAIN, "resources": {"nodes": 2, "gpus_per_node": 1}})
    runtime = profile_runtime(ClusterProfile.model_validate(profile_document()), team="vision")
    arguments = pipeline_arguments(spec, runtime)
    request = pretrain.launch_request(arguments["spec_json"], arguments["runtime_json"], "run-1", "s3://b/shards")
    assert request.scheduler == "kubernetes" and request.image == runtime.image
    assert request.scheduler_cfg["queue"] == "vlp-vision"
    assert request.env == {}, "credentials reach the workers from Secrets, not this step's environment"
    assert request.pod.labels["vlp.io/run-key"] == runtime.run_key
    assert CANARY not in json.dumps(request.pod.model_dump(mode="json"))


class FakeRunner:
    """Stands in for TorchX's Runner after the (real) dry run: records the submitted request."""

    def __init__(self, real, on_wait=None):
        self._real = real
        self.scheduled = None
        self.cancelled: list[str] = []
        self.on_wait = on_wait

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._real.close()

    def dryrun(self, *args, **kwargs):
        return self._real.dryrun(*args, **kwargs)

    def name(self):
        return "session"

    def schedule(self, info):
        self.scheduled = info
        return "kubernetes://session/vlp:tiny-train-abc"

    def wait(self, app_handle, wait_interval):
        from torchx.specs.api import AppState, AppStatus

        if self.on_wait:
            self.on_wait()
        return AppStatus(state=AppState.FAILED, msg="PodFailed")

    def status(self, app_handle):
        from torchx.specs.api import AppState, AppStatus

        return AppStatus(state=AppState.FAILED) if self.scheduled else None

    def log_lines(self, app_handle, role, k, streams=None, should_tail=False):
        from torchx.schedulers.api import Stream

        if streams not in (None, Stream.COMBINED):
            raise ValueError("KubernetesScheduler only supports COMBINED log stream")
        yield "step 1 loss 4.2\n"
        yield "torch.OutOfMemoryError: CUDA out of memory\n"

    def cancel(self, app_handle):
        self.cancelled.append(app_handle)


@pytest.fixture
def fake_runner(monkeypatch):
    import torchx.runner

    holder = {}
    real_get_runner = torchx.runner.get_runner

    def get_runner():
        holder["runner"] = FakeRunner(real_get_runner(), holder.get("on_wait"))
        return holder["runner"]

    monkeypatch.setattr(torchx.runner, "get_runner", get_runner)
    return holder


def _cluster_request():
    spec = spec_from_dict({"name": "tiny", "train": TRAIN, "resources": {"nodes": 2, "gpus_per_node": 2}})
    runtime = profile_runtime(ClusterProfile.model_validate(profile_document()))
    arguments = pipeline_arguments(spec, runtime)
    request = pretrain.launch_request(arguments["spec_json"], arguments["runtime_json"], "run-1", "s3://b/shards")
    # The real step validates the job against the cluster's API during the dry run; there is none here.
    return torchx_launcher.LaunchRequest(**{**request.__dict__, "scheduler_cfg": {**request.scheduler_cfg, "validate_spec": False}})


def test_launch_submits_the_prepared_job_and_reports_the_reason(fake_runner):
    result = torchx_launcher.launch_and_wait(_cluster_request(), stream_logs=False)
    info = fake_runner["runner"].scheduled
    assert info.cfg.queue == "vlp-default" and info.cfg.namespace == "vlp"
    job = info.request.resource
    assert job["metadata"]["labels"]["vlp.io/experiment"] == "tiny"
    assert all(task["template"]["spec"]["tolerations"] for task in job["spec"]["tasks"])
    assert not result.succeeded
    assert "job ended FAILED: PodFailed" in result.reason
    assert "OutOfMemoryError" in result.reason, "read from the combined stream, the only one Kubernetes serves"


def test_sigterm_while_waiting_cancels_the_job(fake_runner):
    def terminated_by_kfp():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this

    fake_runner["on_wait"] = terminated_by_kfp
    with pytest.raises(KeyboardInterrupt):
        torchx_launcher.launch_and_wait(_cluster_request(), stream_logs=False)
    assert fake_runner["runner"].cancelled == ["kubernetes://session/vlp:tiny-train-abc"]
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.default_int_handler) or callable(signal.getsignal(signal.SIGTERM))
