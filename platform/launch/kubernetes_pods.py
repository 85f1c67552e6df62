"""What a training pod on Kubernetes needs beyond what TorchX's AppDef can say: node selector,
tolerations, labels, image pull secrets, credentials from Secrets, and a GPU resource name other
than `nvidia.com/gpu`.

TorchX renders the Volcano job; `apply_to_volcano_job` then edits that request before it is
submitted (TorchX's `Runner.schedule(dryrun_info)` exists for this). The container env can only be
set there: TorchX's pod overlays are per role, while every replica's container has its own name.
Secrets are referred to by name and key; their values never enter the job spec.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TORCHX_GPU_RESOURCE = "nvidia.com/gpu"
LABEL_PREFIX = "vlp.io/"


class PodSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, populate_by_name=True)


class Toleration(PodSection):
    """A Kubernetes toleration, with the field names Kubernetes uses."""

    key: str | None = None
    """Taint key the toleration matches; empty with `operator: Exists` matches every taint."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """`Equal` matches key and value; `Exists` matches the key whatever its value."""
    value: str | None = None
    """Taint value to match when `operator` is `Equal`."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to match; empty matches all effects."""
    toleration_seconds: int | None = Field(None, alias="tolerationSeconds", ge=0)
    """For `NoExecute`: how long the pod stays bound after the taint appears."""

    def as_kubernetes(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class SecretEnv(PodSection):
    """An environment variable filled from one key of a Kubernetes Secret."""

    env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Environment variable name inside the container."""
    secret: str
    """Name of the Secret."""
    key: str
    """Key inside the Secret."""


class TrainingPodSettings(PodSection):
    """Kubernetes settings for every pod of a training job. Names only, never secret values."""

    node_selector: dict[str, str] = {}
    """Node labels the training pods must land on."""
    tolerations: tuple[Toleration, ...] = ()
    """Taints the training pods tolerate (e.g. those on GPU nodes)."""
    labels: dict[str, str] = {}
    """Labels on the job and its pods (team, experiment, spec hash, run key)."""
    env: dict[str, str] = {}
    """Plain environment variables (endpoints and regions, never credentials)."""
    secret_env: tuple[SecretEnv, ...] = ()
    """Environment variables filled from Secrets (S3 and MLflow credentials)."""
    image_pull_secrets: tuple[str, ...] = ()
    """Secrets for pulling the image from a private registry."""
    gpu_resource: str = TORCHX_GPU_RESOURCE
    """Extended resource name of a GPU on the cluster's nodes."""
    accelerator_selector: dict[str, str] = {}
    """Node labels added only to pods that request GPUs (the accelerator type)."""
    cpu: int = Field(2, ge=1)
    """CPU cores per training node."""
    memory_mb: int = Field(4096, ge=256)
    """Memory per training node in MB."""
    shm_size_mb: int | None = Field(None, ge=64)
    """Size of the memory-backed `/dev/shm` (DataLoader workers pass batches through it); None leaves it unbounded."""


def run_labels(team: str, experiment: str, spec_hash: str, run_key: str) -> dict[str, str]:
    """Labels that tie every pod of a submission to its team, experiment file and MLflow run."""
    labels = {"team": team, "experiment": experiment, "spec-hash": spec_hash, "run-key": run_key}
    return {f"{LABEL_PREFIX}{key}": value[:63] for key, value in labels.items() if value}


def apply_to_volcano_job(resource: dict, settings: TrainingPodSettings, namespace: str | None = None) -> dict:
    """The Volcano job with `settings` applied to every task's pod, as plain JSON-ready dicts."""
    from torchx.schedulers.kubernetes_scheduler import sanitize_for_serialization

    job = sanitize_for_serialization(resource)
    metadata = job.setdefault("metadata", {})
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = {**metadata.get("labels", {}), **settings.labels}
    for task in job["spec"]["tasks"]:
        _apply_to_pod(task["template"], settings)
    return job


def _apply_to_pod(pod: dict, settings: TrainingPodSettings) -> None:
    pod.setdefault("metadata", {})["labels"] = {**pod["metadata"].get("labels", {}), **settings.labels}
    spec = pod["spec"]
    spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), **settings.node_selector}
    if settings.tolerations:
        spec["tolerations"] = [*(spec.get("tolerations") or []), *(t.as_kubernetes() for t in settings.tolerations)]
    if settings.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in settings.image_pull_secrets]
    gpus = False
    for container in spec["containers"]:
        if _rename_gpu_resource(container.setdefault("resources", {}), settings.gpu_resource):
            gpus = True
            spec["nodeSelector"].update(settings.accelerator_selector)
        container["env"] = [
            *(container.get("env") or []),
            *({"name": name, "value": value} for name, value in settings.env.items()),
            *(
                {"name": item.env, "valueFrom": {"secretKeyRef": {"name": item.secret, "key": item.key}}}
                for item in settings.secret_env
            ),
        ]
    _size_shm_and_spread(pod, settings, gpus)


def _size_shm_and_spread(pod: dict, settings: TrainingPodSettings, gpus: bool) -> None:
    """`/dev/shm` sized for the loader workers, and the job's replicas on different nodes: each replica is one of the
    spec's `resources.nodes` (required on GPU nodes, preferred on CPU nodes, where a small job may share one)."""
    spec = pod["spec"]
    for volume in spec.get("volumes") or []:
        if settings.shm_size_mb and volume.get("emptyDir", {}).get("medium") == "Memory":
            volume["emptyDir"]["sizeLimit"] = f"{settings.shm_size_mb}Mi"
    instance = pod["metadata"]["labels"].get("app.kubernetes.io/instance")
    if instance is None:
        return
    term = {"labelSelector": {"matchLabels": {"app.kubernetes.io/instance": instance}}, "topologyKey": "kubernetes.io/hostname"}
    anti_affinity = (
        {"requiredDuringSchedulingIgnoredDuringExecution": [term]} if gpus
        else {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]}
    )
    spec.setdefault("affinity", {})["podAntiAffinity"] = anti_affinity


def _rename_gpu_resource(resources: dict, gpu_resource: str) -> bool:
    """TorchX always asks for `nvidia.com/gpu`; other vendors' devices have other names. True if GPUs are requested."""
    requested = False
    for section in ("requests", "limits"):
        quantities = resources.get(section) or {}
        if TORCHX_GPU_RESOURCE in quantities:
            requested = True
            quantities[gpu_resource] = quantities.pop(TORCHX_GPU_RESOURCE)
    return requested
