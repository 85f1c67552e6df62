"""`vlp submit`: compile the experiment's pipeline for a cluster profile, render every Volcano job its
training steps will launch, and hand the pipeline to KFP.

The same `build_pipeline` as `vlp run`; only the runtime (from the profile) and the per-step
Kubernetes settings differ. The Volcano jobs are rendered offline by TorchX's dry run, from the very
`LaunchRequest` each training step builds on the cluster (`step_table.training_launches`: one for
pretraining, one per held-out domain for a DG study); only values known at run time (the MLflow run
id, the prepared data) are placeholders.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vlp.platform.cluster_profile import ClusterProfile
from vlp.platform.profiles import profile_runtime
from vlp.platform.runtime import RuntimeContext
from vlp.platform.spec import ExperimentSpec

PIPELINE_FILE = "pipeline.yaml"


@dataclass(frozen=True)
class ClusterPackage:
    """What `vlp submit` produced: the compiled pipeline, its runtime, and every Volcano job its training steps launch."""

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
        from vlp.pipelines.workload_pipelines import pipeline_arguments

        return pipeline_arguments(self.spec, self.runtime)


def package_for_cluster(spec: ExperimentSpec, profile: ClusterProfile, out_dir: Path, run_key: str | None = None, workspace=None) -> ClusterPackage:
    """Write `pipeline.yaml` and `<job>.volcano.yaml` per training job into `out_dir`; contacts nothing. With a
    `workspace` (`vlp.platform.workspace.ShippedWorkspace`) every step and worker runs that shipped code."""
    from vlp.pipelines.cluster_settings import step_configurator
    from vlp.pipelines.compile import compile_to_file
    from vlp.platform.cluster_checks import check_volcano_job
    from vlp.platform.runtime import WorkspaceRef

    runtime = profile_runtime(profile, team=spec.team, run_key=run_key)
    if workspace is not None:
        runtime = runtime.model_copy(update={"workspace": WorkspaceRef(**workspace.as_dict()), "git_commit": workspace.git_commit})
    rendered = training_jobs(spec, runtime)
    # Every job is checked before anything is written: a job the cluster would never run is refused whole.
    for job in rendered.values():
        check_volcano_job(job, profile.queue_capability.get(job["spec"]["queue"]))
    pipeline = compile_to_file(spec, runtime, out_dir / PIPELINE_FILE, step_configurator(profile, spec, runtime.run_key))
    jobs = {key: write_atomically(out_dir / f"{key}.volcano.yaml", _as_yaml(job)) for key, job in rendered.items()}
    return ClusterPackage(spec=spec, profile=profile, runtime=runtime, pipeline=pipeline, training_jobs=jobs)


def training_jobs(spec: ExperimentSpec, runtime: RuntimeContext) -> dict[str, dict]:
    """{job key: Volcano job} of every job the pipeline's training steps launch, rendered without a cluster."""
    from vlp.pipelines.step_table import training_launches
    from vlp.platform.launch.torchx_launcher import dryrun

    return {key: dryrun(request).request.resource for key, request in training_launches(spec, runtime).items()}


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
