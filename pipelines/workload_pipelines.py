"""Which pipeline runs an experiment, and the arguments it gets: one place shared by `vlp run`, `vlp compile` and
`vlp submit`. An experiment with `sweep:` runs the sweep pipeline, each trial the workload's pipeline."""

from __future__ import annotations

import importlib
import json

PIPELINES = {"pretrain": "vlp.pipelines.pretrain_pipeline", "dg": "vlp.pipelines.dg_pipeline"}


def build_pipeline_for(workload: str, image: str, configure_step=None):
    return importlib.import_module(PIPELINES[workload]).build_pipeline(image, configure_step)


def pipeline_for(spec, image: str, configure_step=None):
    """The pipeline that runs `spec`: its workload's, or the sweep pipeline around it."""
    workload = build_pipeline_for(spec.workload, image, configure_step)
    if spec.sweep is None:
        return workload
    from vlp.pipelines import sweep_pipeline

    return sweep_pipeline.build_pipeline(image, workload, spec.sweep.parallelism, configure_step)


def pipeline_arguments(spec, runtime) -> dict[str, str]:
    """The pipeline's two parameters: the experiment spec and where it runs, as JSON."""
    return {"spec_json": json.dumps(spec.model_dump(mode="json", by_alias=True)), "runtime_json": runtime.model_dump_json()}
