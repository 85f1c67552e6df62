"""Which pipeline runs an experiment's `workload`: one lookup shared by `vlp run`, `vlp compile` and `vlp submit`."""

from __future__ import annotations

import importlib

PIPELINES = {"pretrain": "vlp.pipelines.pretrain_pipeline", "dg": "vlp.pipelines.dg_pipeline"}


def build_pipeline_for(workload: str, image: str, configure_step=None):
    return importlib.import_module(PIPELINES[workload]).build_pipeline(image, configure_step)
