"""Evaluate any model on any dataset outside a pipeline (what `vlp eval` runs): resolve the model, open the
data, run the battery, write one JSON per task and the figures, and record it all on an MLflow run."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from vlp.platform.spec.evaluation import EvalSection
from vlp.platform.storage import join, open_storage
from vlp.workloads.data.readers import ReaderOptions


@dataclass(frozen=True)
class EvalRequest:
    model: str
    """A model reference (see `vlp.workloads.evaluation.model_source`)."""
    data: str
    """Dataset URI (local or s3://)."""
    output_uri: str
    """Folder (local or s3://) for the result JSONs and `plots/`."""
    section: EvalSection = EvalSection()
    data_format: str = "auto"
    reader: ReaderOptions = ReaderOptions()
    checkpoint_file: str | None = None
    classes_file: str | None = None
    templates_file: str | None = None
    probe_train: str | None = None
    """A separate training set for the linear probe (same format as `data`); default: a split of `data`."""
    experiment: str | None = "vlp-eval"
    """MLflow experiment to record the evaluation in; None records nothing."""
    tracking_uri: str | None = None
    limit: int | None = None
    """Evaluate only the first N images (a quick look)."""
    dataset_name: str | None = None
    """How results name the dataset (CLIP_benchmark's `dataset`, e.g. `wds/vtab/cifar10`); default: from the data."""


@dataclass
class EvalReport:
    results: list[dict]
    result_uris: list[str]
    plot_uris: list[str]
    skipped: dict[str, str]
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "results": self.results, "files": self.result_uris, "plots": self.plot_uris, "skipped": self.skipped}


def evaluate(request: EvalRequest) -> EvalReport:
    from vlp.platform.state import default_tracking_uri
    from vlp.workloads.data.readers import open_source
    from vlp.workloads.evaluation.model_source import load_model
    from vlp.workloads.evaluation.prompts import load_prompts
    from vlp.workloads.evaluation.publish import evaluation_name, flat_metrics, write_results
    from vlp.workloads.evaluation.suite import run_suite

    tracking_uri = request.tracking_uri or default_tracking_uri()
    # The data first: a wrong path fails in a second, before a model is built or downloaded.
    source = open_source(request.data, request.data_format, request.reader)
    prompts = load_prompts(source, request.section, request.classes_file, request.templates_file)
    probe_source = open_source(request.probe_train, request.data_format, request.reader) if request.probe_train else None
    loaded = load_model(request.model, request.checkpoint_file, tracking_uri)
    with tempfile.TemporaryDirectory() as scratch:
        output = run_suite(
            loaded.built, source, request.section, loaded.model, plot_dir=Path(scratch), prompts=prompts,
            probe_source=probe_source, dataset_name=request.dataset_name, limit=request.limit, pretrained=loaded.pretrained,
        )
        result_uris = write_results(output.results, request.output_uri)
        plot_uris = []
        for plot in output.plots:
            # Figures of one evaluation together, in a folder named like its result files.
            uri = join(request.output_uri, "plots", evaluation_name(output.results[0]), plot.name)
            open_storage(uri).upload_file(plot, uri)
            plot_uris.append(uri)
        report = EvalReport(output.results, result_uris, plot_uris, output.skipped, metrics=flat_metrics(output.results))
        if request.experiment:
            report.run_id = _record(request, loaded, source, output, tracking_uri)
    return report


def _record(request: EvalRequest, loaded, source, output, tracking_uri: str) -> str:
    """One MLflow run per evaluation: parameters say what was evaluated on what, artifacts hold JSONs and figures."""
    from vlp.platform.tracking.runs import client, finish_run, start_run
    from vlp.workloads.evaluation.publish import log_to_mlflow

    tags = {"vlp.workload": "eval", "vlp.eval.model": loaded.name, "vlp.eval.dataset": source.name}
    params = {
        "model": request.model, "checkpoint": loaded.checkpoint_uri or "", "data": request.data, "format": source.format,
        "classes": str(len(source.classnames)), "limit": "" if request.limit is None else str(request.limit),
    }
    run_id = start_run(request.experiment, f"{loaded.name} on {source.name}", tags, params, tracking_uri)
    try:
        log_to_mlflow(client(tracking_uri), run_id, output.results, output.plots)
    except BaseException:
        finish_run(run_id, "FAILED", tracking_uri)
        raise
    finish_run(run_id, "FINISHED", tracking_uri)
    return run_id
