"""Every pipeline step, declared once. The KFP components (`components.py`), the cluster settings of each
step pod (`cluster_settings.py`), the pipelines (`pretrain_pipeline.py`, `dg_pipeline.py`, and so `vlp run`)
and the dry run's Volcano jobs (`submit.py`) all read this table; nothing else names a step or its kind.

A *light* step does its work in its own pod: modest CPU and memory, the profile's step deadline, and retried
by KFP when the table says so. A *train* step launches a multi-node TorchX job on Volcano and waits for it: its
pod is just as modest, but it gets the training deadline, and it is never retried by KFP because Volcano owns
the job's restarts (`resources.max_restarts`, see `vlp.platform.launch.torchx_launcher.build_appdef`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from typing import Callable, Literal

from vlp.pipelines import components
from vlp.pipelines.steps import dg_train, pretrain

# Known only once the pipeline runs: the MLflow run the first step opens, the data the data steps write.
RUN_ID_PLACEHOLDER = "RUNTIME-MLFLOW-RUN-ID"
TRAIN_URI_PLACEHOLDER = "RUNTIME-TRAIN-DATA-URI"
DG_DATASET_PLACEHOLDER = "RUNTIME-DG-DATASET-URI"
DG_PRETRAINED_PLACEHOLDER = "RUNTIME-PRETRAINED-CHECKPOINT-URI"
DG_HELD_OUT_PLACEHOLDER = "RUNTIME-HELD-OUT-DOMAIN"


@dataclass(frozen=True)
class Step:
    """One pipeline step."""

    name: str
    """KFP task name (and the key of its settings and dry-run files)."""
    function: Callable
    """The component function in `components.py`."""
    kind: Literal["light", "train"]
    """`light` runs in its pod; `train` launches a TorchX job and waits for it (training deadline, Volcano job)."""
    retried: bool = False
    """Whether KFP retries the step (`steps.retries` of the profile); only for idempotent light steps."""
    worker_module: str | None = None
    """The module the step's TorchX job runs under torchrun (train steps)."""
    launches: Callable | None = None
    """`launches(spec, runtime) -> {job key: LaunchRequest}`: every job the step launches, rendered offline (train steps)."""

    @property
    def deadline(self) -> Literal["step", "train"]:
        """Which of the profile's deadlines applies: `steps.timeout_seconds` or `steps.train_timeout_seconds`."""
        return "train" if self.kind == "train" else "step"


def _pretrain_launches(spec, runtime) -> dict:
    from vlp.pipelines.workload_pipelines import pipeline_arguments

    arguments = pipeline_arguments(spec, runtime)
    return {"pretrain": pretrain.launch_request(arguments["spec_json"], arguments["runtime_json"], RUN_ID_PLACEHOLDER, TRAIN_URI_PLACEHOLDER)}


def _dg_pretrained_launches(spec, runtime) -> dict:
    # With `dg.pretrained` set the step only loads that model; otherwise it pretrains one, as the pretrain step does.
    return {} if spec.dg.pretrained else {"dg-pretrained": _pretrain_launches(spec, runtime)["pretrain"]}


def _dg_train_launches(spec, runtime) -> dict:
    from vlp.pipelines.steps.context import storage_root
    from vlp.platform.layout import RunLayout

    layout = RunLayout(storage_root(spec, runtime), RUN_ID_PLACEHOLDER)
    pretrained = spec.dg.pretrained or DG_PRETRAINED_PLACEHOLDER
    children = {method: f"RUNTIME-CHILD-RUN-{method.upper()}" for method in spec.dg.methods}
    return {
        f"dg-train-{_file_safe(domain)}": dg_train.launch_request(spec, runtime, layout, DG_DATASET_PLACEHOLDER, pretrained, domain, children)
        for domain in held_out_domains_offline(spec)
    }


def held_out_domains_offline(spec) -> list[str]:
    """The domains a DG study holds out, as far as the spec tells without reading the data: `dg.domains`, or the
    shapes render styles; otherwise one placeholder (the dg-domains step lists the data on the cluster)."""
    if spec.dg.domains:
        return list(spec.dg.domains)
    if spec.dg.source == "shapes" and spec.dg.domain_field == "style":
        return list(spec.data.shapes.styles)
    return [DG_HELD_OUT_PLACEHOLDER]


def _file_safe(domain: str) -> str:
    cleaned = re.sub(r"[^a-z0-9-]+", "-", domain.lower()).strip("-")
    return cleaned if cleaned == domain else f"{cleaned or 'domain'}-{hashlib.sha256(domain.encode()).hexdigest()[:4]}"


START_RUN = Step("start-run", components.start_run, "light")
FINISH_RUN = Step("finish-run", components.finish_run, "light")

PIPELINE_STEPS: dict[str, tuple[Step, ...]] = {
    "pretrain": (
        START_RUN,
        Step("prepare-data", components.prepare_data, "light", retried=True),
        Step("pretrain", components.pretrain, "train", worker_module=pretrain.WORKER_MODULE, launches=_pretrain_launches),
        Step("evaluate", components.evaluate, "light", retried=True),
        Step("register", components.register, "light", retried=True),
        FINISH_RUN,
    ),
    "dg": (
        START_RUN,
        Step("dg-data", components.dg_data, "light", retried=True),
        Step("dg-domains", components.dg_domains, "light", retried=True),
        Step("dg-pretrained", components.dg_pretrained, "train", worker_module=pretrain.WORKER_MODULE, launches=_dg_pretrained_launches),
        Step("dg-train", components.dg_train, "train", worker_module=dg_train.WORKER_MODULE, launches=_dg_train_launches),
        Step("dg-report", components.dg_report, "light", retried=True),
        FINISH_RUN,
    ),
}


# A sweep's own steps around its trials (each trial is the workload's pipeline, inside a ParallelFor).
SWEEP_STEPS: tuple[Step, ...] = (
    Step("start-sweep", components.start_sweep, "light", retried=True),
    Step("sweep-trial", components.sweep_trial, "light", retried=True),
    Step("finish-sweep", components.finish_sweep, "light"),
)


def steps_of(workload: str) -> tuple[Step, ...]:
    return PIPELINE_STEPS[workload]


def training_launches(spec, runtime) -> dict:
    """{job key: LaunchRequest} of every TorchX job the experiment's pipeline launches (one per held-out domain for
    dg), with placeholders where only the running pipeline knows a value. `validate_spec` is off: that is a
    server-side dry run against the cluster's API, which the step makes and a dry run cannot."""
    if spec.sweep is not None:
        from vlp.platform.spec.loading import trial_specs
        from vlp.platform.tracking.sweeps import trial_run_key

        # Every trial launches the workload's jobs under its own run key: the sweep renders them all.
        launches = {}
        for number, (_, trial) in enumerate(trial_specs(spec), 1):
            trial_runtime = runtime.model_copy(update={"run_key": trial_run_key(runtime.run_key, number)})
            launches.update({f"trial-{number}-{key}": request for key, request in training_launches(trial, trial_runtime).items()})
        return launches
    launches = {}
    for step in steps_of(spec.workload):
        if step.launches is None:
            continue
        for key, request in step.launches(spec, runtime).items():
            if request.scheduler == "kubernetes":
                request = replace(request, scheduler_cfg={**request.scheduler_cfg, "validate_spec": False})
            launches[key] = request
    return launches
