"""`vlp submit`: compile the experiment's pipeline for a cluster profile, render the Volcano job of
every training step, and hand the pipeline to KFP.

The same `build_pipeline` as `vlp run`; only the runtime (from the profile) and the per-step
Kubernetes settings differ. The Volcano jobs are rendered offline by TorchX's dry run, from the very
`LaunchRequest` the training step builds on the cluster; only the MLflow run id and the prepared
data URI, known at run time, are placeholders.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from vlp.platform.cluster_profile import ClusterProfile
from vlp.platform.profiles import profile_runtime
from vlp.platform.runtime import RuntimeContext
from vlp.platform.spec import ExperimentSpec

PIPELINE_FILE = "pipeline.yaml"
# Known only once the pipeline runs: the MLflow run the first step opens, the shards prepare-data writes.
RUN_ID_PLACEHOLDER = "RUNTIME-MLFLOW-RUN-ID"
TRAIN_URI_PLACEHOLDER = "RUNTIME-TRAIN-DATA-URI"


@dataclass(frozen=True)
class ClusterPackage:
    """What `vlp submit` produced: the compiled pipeline, its runtime, and each training step's Volcano job."""

    spec: ExperimentSpec
    profile: ClusterProfile
    runtime: RuntimeContext
    pipeline: Path
    training_jobs: dict[str, Path]

    @property
    def run_name(self) -> str:
        # The MLflow run is named the same way (start_run step), so the two are easy to match by eye.
        return f"{self.spec.name}-{self.runtime.run_key[:8]}"

    @property
    def experiment(self) -> str:
        return self.profile.kfp.experiment or self.spec.team

    def arguments(self) -> dict[str, str]:
        return pipeline_arguments(self.spec, self.runtime)


def pipeline_arguments(spec: ExperimentSpec, runtime: RuntimeContext) -> dict[str, str]:
    return {"spec_json": json.dumps(spec.model_dump(mode="json", by_alias=True)), "runtime_json": runtime.model_dump_json()}


def package_for_cluster(spec: ExperimentSpec, profile: ClusterProfile, out_dir: Path, run_key: str | None = None) -> ClusterPackage:
    """Write `pipeline.yaml` and `<step>.volcano.yaml` per training step into `out_dir`; contacts nothing."""
    from vlp.pipelines.cluster_settings import step_configurator
    from vlp.pipelines.compile import compile_to_file

    runtime = profile_runtime(profile, team=spec.team, run_key=run_key)
    pipeline = compile_to_file(spec, runtime, out_dir / PIPELINE_FILE, step_configurator(profile, spec, runtime.run_key))
    jobs = {}
    for step, job in training_jobs(spec, runtime).items():
        jobs[step] = write_atomically(out_dir / f"{step}.volcano.yaml", _as_yaml(job))
    return ClusterPackage(spec=spec, profile=profile, runtime=runtime, pipeline=pipeline, training_jobs=jobs)


def training_jobs(spec: ExperimentSpec, runtime: RuntimeContext) -> dict[str, dict]:
    """The Volcano job each training step would submit, rendered without a cluster."""
    from torchx.schedulers.kubernetes_scheduler import sanitize_for_serialization

    from vlp.pipelines.steps import pretrain
    from vlp.platform.launch.torchx_launcher import dryrun

    arguments = pipeline_arguments(spec, runtime)
    request = pretrain.launch_request(arguments["spec_json"], arguments["runtime_json"], RUN_ID_PLACEHOLDER, TRAIN_URI_PLACEHOLDER)
    # Validating the spec is a server-side dry run against the cluster's API: the step does it, we cannot.
    request = replace(request, scheduler_cfg={**request.scheduler_cfg, "validate_spec": False})
    return {"pretrain": sanitize_for_serialization(dryrun(request).request.resource)}


def submit_package(package: ClusterPackage):
    """Start a KFP run of the compiled pipeline in the team's experiment; returns `SubmittedRun`."""
    from vlp.platform.backends.kfp_cluster import KfpCluster

    return KfpCluster(package.profile).submit(package.pipeline, package.run_name, package.experiment, package.arguments())


def write_atomically(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return path


def _as_yaml(document: dict) -> str:
    import yaml

    return yaml.safe_dump(document, sort_keys=False)
