"""Train step: launch the pretraining workload under torchrun through TorchX and wait for it."""

from __future__ import annotations

import os

from vlp.pipelines.steps.context import decode, storage_root
from vlp.platform.launch.kubernetes_pods import run_labels
from vlp.platform.launch.torchx_launcher import LaunchFailed, LaunchRequest, launch_and_wait
from vlp.platform.layout import RunLayout
from vlp.platform.tracking.runs import client

WORKER_MODULE = "vlp.workloads.train.main"
# Passed through to the workers when set; values never appear in arguments or logs.
PASSTHROUGH_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                   "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "VLP_HOME", "PYTHONSAFEPATH")
# Volcano names pods "<name>-<14-char suffix>-<role>-<replica>-0", and a pod name must fit in 63 characters.
MAX_NAME_PREFIX = 30


def launch_request(spec_json: str, runtime_json: str, run_id: str, train_uri: str) -> LaunchRequest:
    spec, runtime = decode(spec_json, runtime_json)
    args = [
        "--storage-root", storage_root(spec, runtime),
        "--run-id", run_id,
        "--tracking-uri", runtime.tracking_uri,
        "--train-data", train_uri,
    ]
    env = {}
    if runtime.scheduler == "local_cwd":
        env = {name: os.environ[name] for name in PASSTHROUGH_ENV if name in os.environ}
        # All "nodes" share this machine: split its cores so processes don't oversubscribe them.
        env["VLP_THREADS_PER_PROC"] = str(max(1, (os.cpu_count() or 1) // spec.resources.world_size))
    cluster = {}
    if runtime.scheduler == "kubernetes":
        # Credentials reach the workers from Secrets named in the pod settings, never from this step's environment.
        labels = run_labels(spec.team, spec.name, spec.spec_hash(), runtime.run_key)
        pod = runtime.training_pod.model_copy(update={"labels": {**runtime.training_pod.labels, **labels}})
        cluster = {"pod": pod, "cpu": pod.cpu, "mem_mb": pod.memory_mb}
    return LaunchRequest(
        module=WORKER_MODULE,
        args=args,
        nodes=spec.resources.nodes,
        procs_per_node=spec.resources.procs_per_node,
        gpus_per_node=spec.resources.gpus_per_node,
        max_restarts=spec.resources.max_restarts,
        name=f"{spec.name[:MAX_NAME_PREFIX].rstrip('-')}-train",
        image=runtime.image,
        scheduler=runtime.scheduler,
        scheduler_cfg=dict(runtime.scheduler_cfg),
        env=env,
        **cluster,
    )


def run(spec_json: str, runtime_json: str, run_id: str, train_uri: str) -> str:
    """Returns the URI of the final checkpoint."""
    request = launch_request(spec_json, runtime_json, run_id, train_uri)
    result = launch_and_wait(request)
    spec, runtime = decode(spec_json, runtime_json)
    if not result.succeeded:
        message = f"training job {result.app_handle} failed: {result.reason}"
        # The pipeline's exit handler only learns that a task failed; the run keeps the reason.
        client(runtime.tracking_uri).set_tag(run_id, "vlp.error", message[:4000])
        raise LaunchFailed(message)
    from vlp.workloads.train.checkpoint import Checkpointer

    latest = Checkpointer(RunLayout(storage_root(spec, runtime), run_id).checkpoints).latest_uri()
    if latest is None:
        raise LaunchFailed(f"training job {result.app_handle} succeeded but wrote no checkpoint")
    return latest
