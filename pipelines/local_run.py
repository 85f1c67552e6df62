"""`vlp run`: the pretraining pipeline on this machine, then a summary read back from MLflow."""

from __future__ import annotations

from dataclasses import dataclass, field

from vlp.platform.backends.local_kfp import run_pipeline_locally
from vlp.platform.runtime import RuntimeContext
from vlp.platform.spec import ExperimentSpec
from vlp.platform.state import vlp_home


@dataclass
class RunOutcome:
    run_id: str | None
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    model: dict[str, str] | None = None
    error: str = ""
    experiment_id: str | None = None

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "status": self.status, "metrics": self.metrics, "model": self.model, "error": self.error}


def run_experiment(spec: ExperimentSpec, runtime: RuntimeContext, quiet: bool = False) -> RunOutcome:
    from vlp.pipelines.workload_pipelines import build_pipeline_for, pipeline_arguments

    pipeline = build_pipeline_for(spec.workload, runtime.image)
    arguments = pipeline_arguments(spec, runtime)
    run_pipeline_locally(pipeline, arguments, vlp_home() / "kfp-local", quiet=quiet, tracking_uri=runtime.tracking_uri)
    return read_outcome(runtime)


def read_outcome(runtime: RuntimeContext) -> RunOutcome:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=runtime.tracking_uri)
    runs = client.search_runs(
        experiment_ids=[experiment.experiment_id for experiment in client.search_experiments()],
        filter_string=f"tags.`vlp.run_key` = '{runtime.run_key}'",
        max_results=1,
    )
    if not runs:
        return RunOutcome(run_id=None, status="FAILED", error="the pipeline failed before an MLflow run was created")
    run = runs[0]
    # Headline numbers: zero-shot and retrieval, and a DG study's held-out accuracies (not its selection scores).
    metrics = {key: value for key, value in run.data.metrics.items() if key.startswith(("zeroshot/", "retrieval/", "dg/")) and not key.endswith("/val")}
    model = None
    for version in client.search_model_versions(f"run_id = '{run.info.run_id}'"):
        model = {"name": version.name, "version": str(version.version)}
    return RunOutcome(
        run_id=run.info.run_id, status=run.info.status, metrics=metrics, model=model,
        error=run.data.tags.get("vlp.error", ""), experiment_id=run.info.experiment_id,
    )
