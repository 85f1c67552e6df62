"""What a cluster would only tell us hours later, checked before `vlp submit` sends anything: the job makes sense
on the profile's nodes, its gang fits the queue it is sent to, and every name a Service takes is a valid label.

Volcano schedules a job as a gang: the PodGroup it creates for the job (`volcano_podgroup`, as its job controller
builds it) needs `minMember` pods with their `minResources` at once, and a queue never admits more than its
`capability`. A job whose gang exceeds that stays Pending forever, with no error anywhere.
"""

from __future__ import annotations

import re
from decimal import Decimal

from vlp.platform.errors import SpecError

# Volcano's svc plugin creates a Service named after the job: a DNS-1035 label.
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_LABEL = 63
# torch's DataLoader workers pass batches through shared memory; the container default (64 MiB) is too small.
SHM_MB_PER_LOADER_WORKER = 512
SHM_MB_MINIMUM = 1024


def check_job_on_profile(spec, profile) -> None:
    """The spec's `resources:` on the profile's training nodes."""
    resources = spec.resources
    if profile.targets_gpu_nodes and resources.gpus_per_node == 0:
        raise SpecError(
            f"resources.gpus_per_node: 0, but profile {profile.name} sends training pods to GPU nodes "
            f"({profile.gpu_nodes_reason}); request GPUs (--set resources.gpus_per_node=N --set resources.procs_per_node=N) "
            "or submit to a CPU profile"
        )
    if resources.gpus_per_node and resources.procs_per_node != resources.gpus_per_node:
        raise SpecError(
            f"resources.procs_per_node: {resources.procs_per_node} processes for {resources.gpus_per_node} GPUs per node; "
            f"torchrun runs one process per GPU: set procs_per_node to {resources.gpus_per_node}"
        )


def check_volcano_job(job: dict, capability: dict[str, str] | None) -> None:
    """A rendered Volcano job: its names, and its gang against the capability of its queue (None: unknown)."""
    name = job["metadata"]["name"]
    if len(name) > MAX_LABEL or not DNS_1035_LABEL.match(name):
        raise SpecError(f"job name {name!r}: Volcano's svc plugin creates a Service of that name, which must be a DNS-1035 label (a-z first, a-z0-9- after, at most 63)")
    for task in job["spec"]["tasks"]:
        pod = f"{name}-{task['name']}-0"
        if len(pod) > MAX_LABEL or not DNS_1035_LABEL.match(task["name"]):
            raise SpecError(f"job {name}: task {task['name']!r} gives pod hostname {pod!r}, not a DNS label of at most 63 characters")
    if capability is None:
        return
    queue = job["spec"]["queue"]
    needed = volcano_podgroup(job)["spec"].get("minResources", {})
    for resource, quantity in sorted(needed.items()):
        limit = capability.get(resource)
        if limit is None:
            if parse_quantity(quantity) > 0 and _is_scarce(resource):
                raise SpecError(f"queue {queue}: the job needs {quantity} {resource} but the queue's capability grants none; send it to a queue with {resource}")
            continue
        if parse_quantity(quantity) > parse_quantity(limit):
            raise SpecError(
                f"queue {queue}: the job's gang of {len(job['spec']['tasks'])} pods needs {resource} {quantity} at once, "
                f"more than the queue's capability {limit}; it would stay Pending: use fewer resources.nodes, smaller "
                "worker_cpu/worker_memory_mb, or a larger queue"
            )


def _is_scarce(resource: str) -> bool:
    # Extended resources (GPUs) are capped at zero when a capability omits them; cpu and memory are not.
    return "/" in resource


def volcano_podgroup(job: dict) -> dict:
    """The PodGroup Volcano's job controller creates for `job` (v1.15 `createOrUpdatePodGroup`): the gang of every
    task's `minAvailable` pods (Volcano's webhook defaults it to the replicas), their summed requests, the queue
    and the priority class."""
    spec = job["spec"]
    min_task_member = {task["name"]: task.get("minAvailable", task.get("replicas", 1)) for task in spec["tasks"]}
    totals: dict[str, Decimal] = {}
    for task in spec["tasks"]:
        for _ in range(min_task_member[task["name"]]):
            for container in task["template"]["spec"]["containers"]:
                for resource, quantity in ((container.get("resources") or {}).get("requests") or {}).items():
                    totals[resource] = totals.get(resource, Decimal(0)) + parse_quantity(quantity)
    podgroup_spec = {
        "minMember": spec.get("minAvailable", sum(min_task_member.values())),
        "minTaskMember": min_task_member,
        "queue": spec["queue"],
        "minResources": {resource: format_quantity(value) for resource, value in totals.items()},
    }
    if spec.get("priorityClassName"):
        podgroup_spec["priorityClassName"] = spec["priorityClassName"]
    metadata = {"name": f"{job['metadata']['name']}-podgroup", "labels": dict(job["metadata"].get("labels", {}))}
    if job["metadata"].get("namespace"):
        metadata["namespace"] = job["metadata"]["namespace"]
    return {"apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "PodGroup", "metadata": metadata, "spec": podgroup_spec}


def parse_quantity(quantity) -> Decimal:
    """A Kubernetes quantity (`7900m`, `31744M`, `2Ti`, 8) as a number, by the Kubernetes client's own parser."""
    from kubernetes.utils import parse_quantity as kubernetes_parse_quantity

    return kubernetes_parse_quantity(quantity)


def format_quantity(value: Decimal) -> str:
    """A plain decimal quantity (milli-units when fractional), exact for what `parse_quantity` returns."""
    if value == value.to_integral_value():
        return str(int(value))
    return f"{int(value * 1000)}m"


def shm_size_mb(loader_workers: int, procs_per_node: int) -> int:
    """`/dev/shm` for one training pod: every process's loader workers hand batches through it."""
    return max(SHM_MB_MINIMUM, SHM_MB_PER_LOADER_WORKER * max(loader_workers, 1) * procs_per_node)
