"""Per-step Kubernetes settings (kfp-kubernetes) for the pipeline on a cluster: the `configure_step`
hook of `build_pipeline`.

Every step pod gets modest CPU and memory, the profile's step node selector and tolerations, S3 and
MLflow credentials as env from Secrets (by name and key: no value enters the compiled YAML), labels
for team, experiment, spec hash and run key, and a deadline. What differs between steps comes from the
step table (`step_table.py`): training steps get the training deadline and are never retried by KFP (Volcano
restarts their jobs, `resources.max_restarts`); light steps marked `retried` are retried.

No step asks for a GPU. A train step only launches the TorchX job and waits for it, so GPUs, the
accelerator type and the training node selector belong on the Volcano job's pods
(`RuntimeContext.training_pod`); a GPU on the step pod would sit idle for the whole run.
"""

from __future__ import annotations

from typing import Callable

from vlp.pipelines.step_table import Step
from vlp.platform.cluster_profile import ClusterProfile
from vlp.platform.launch.kubernetes_pods import run_labels
from vlp.platform.spec import ExperimentSpec


def step_configurator(profile: ClusterProfile, spec: ExperimentSpec, run_key: str) -> Callable[[object, Step], None]:
    """`configure_step(task, step)` for `build_pipeline`, closed over this submission's profile and spec."""
    labels = run_labels(spec.team, spec.name, spec.spec_hash(), run_key)
    steps = profile.steps

    def configure_step(task, step: Step) -> None:
        from kfp import kubernetes

        task.set_cpu_request(steps.cpu_request)
        task.set_memory_request(steps.memory_request)
        task.set_cpu_limit(steps.cpu_limit)
        task.set_memory_limit(steps.memory_limit)
        for key, value in steps.node_selector.items():
            kubernetes.add_node_selector(task, label_key=key, label_value=value)
        for toleration in steps.tolerations:
            kubernetes.add_toleration(
                task, key=toleration.key, operator=toleration.operator, value=toleration.value,
                effect=toleration.effect, toleration_seconds=toleration.toleration_seconds,
            )
        for secret_name, key_to_env in _secret_env_by_secret(profile).items():
            kubernetes.use_secret_as_env(task, secret_name=secret_name, secret_key_to_env=key_to_env)
        for name, value in profile.plain_env().items():
            task.set_env_variable(name, value)
        if profile.image_pull_secrets:
            kubernetes.set_image_pull_secrets(task, list(profile.image_pull_secrets))
        for key, value in labels.items():
            kubernetes.add_pod_label(task, key, value)
        kubernetes.set_timeout(task, steps.train_timeout_seconds if step.deadline == "train" else steps.timeout_seconds)
        if step.retried and steps.retries:
            task.set_retry(num_retries=steps.retries, backoff_duration=steps.retry_backoff)

    return configure_step


def _secret_env_by_secret(profile: ClusterProfile) -> dict[str, dict[str, str]]:
    """kfp-kubernetes takes one call per Secret: {secret name: {key: env var}}."""
    grouped: dict[str, dict[str, str]] = {}
    for item in profile.secret_env():
        grouped.setdefault(item.secret, {})[item.key] = item.env
    return grouped
