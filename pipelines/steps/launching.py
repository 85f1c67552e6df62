"""What the training steps share: the TorchX launch request for a worker module, with the environment a local
job needs and the pod settings a cluster job needs."""

from __future__ import annotations

import os
import re

from vlp.platform.launch.torchx_launcher import LaunchRequest

# Passed through to local workers when set; values never appear in arguments or logs.
PASSTHROUGH_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                   "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "VLP_HOME", "PYTHONSAFEPATH",
                   "VLP_LEASE_TTL_SECONDS", "VLP_STORAGE_RETRY_SECONDS")
# Volcano names pods "<job name>-<14-char suffix>-<role>-<replica>-0", and a pod name must fit in 63 characters.
MAX_JOB_NAME = 36


def threads_per_process(world_size: int) -> int:
    """All "nodes" of a local job share this machine: split its cores so processes don't oversubscribe them."""
    return max(1, (os.cpu_count() or 1) // world_size)


def job_name(experiment: str, job_suffix: str, run_key: str) -> str:
    """`<experiment name>-<job_suffix>-<run key's first 8>`, at most MAX_JOB_NAME characters of [a-z0-9-]: the same
    for every attempt of the step in one run, so an attempt finds the job an earlier one launched."""
    tail = f"-{job_suffix}-{run_key[:8]}".lower()
    prefix = re.sub(r"[^a-z0-9-]+", "-", experiment.lower()).strip("-")
    if not prefix[:1].isalpha():
        # Volcano's svc plugin names a Service after the job, and a Service name (DNS-1035) starts with a letter.
        prefix = f"vlp-{prefix}".rstrip("-")
    return f"{prefix[: MAX_JOB_NAME - len(tail)].rstrip('-')}{tail}"


def worker_launch_request(spec, runtime, module: str, args: list[str], job_suffix: str) -> LaunchRequest:
    """`module` under torchrun in the spec's shape, named after the run (see `job_name`)."""
    env = {}
    if runtime.scheduler == "local_cwd":
        env = {name: os.environ[name] for name in PASSTHROUGH_ENV if name in os.environ}
        env["VLP_THREADS_PER_PROC"] = str(threads_per_process(spec.resources.world_size))
    cluster = {}
    if runtime.scheduler == "kubernetes":
        from vlp.platform.launch.kubernetes_pods import run_labels

        # Credentials reach the workers from Secrets named in the pod settings, never from this step's environment.
        labels = run_labels(spec.team, spec.name, spec.spec_hash(), runtime.run_key)
        from vlp.platform.cluster_checks import shm_size_mb

        shm = shm_size_mb(spec.data.workers, spec.resources.procs_per_node)
        pod = runtime.training_pod.model_copy(update={"labels": {**runtime.training_pod.labels, **labels}, "shm_size_mb": shm})
        cluster = {"pod": pod, "cpu": pod.cpu, "mem_mb": pod.memory_mb}
    if runtime.scheduler != "local_cwd" or runtime.sweep_trial is not None:
        from vlp.platform.tracking.system_metrics import worker_command

        # No `vlp run` process watches this run's machine (a cluster job, a sweep's trial): its rank-0 worker does.
        module, args = worker_command(module, args)
    if runtime.workspace is not None:
        from vlp.platform import workspace

        # Each worker installs the shipped working tree over the image's vlp, then runs `module` from it.
        env.update({workspace.WORKSPACE_URI_ENV: runtime.workspace.uri, workspace.WORKSPACE_SHA256_ENV: runtime.workspace.wheel_sha256})
        module, args = workspace.__name__, [module, *args]
    return LaunchRequest(
        module=module,
        args=args,
        nodes=spec.resources.nodes,
        procs_per_node=spec.resources.procs_per_node,
        gpus_per_node=spec.resources.gpus_per_node,
        max_restarts=spec.resources.max_restarts,
        name=job_name(spec.name, job_suffix, runtime.run_key),
        image=runtime.image,
        scheduler=runtime.scheduler,
        scheduler_cfg=dict(runtime.scheduler_cfg),
        env=env,
        **cluster,
    )
