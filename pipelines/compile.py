"""Compile an experiment's pipeline to KFP IR YAML, with the spec and runtime as default arguments."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from vlp.platform.runtime import RuntimeContext
from vlp.platform.spec import ExperimentSpec


def compile_to_file(spec: ExperimentSpec, runtime: RuntimeContext, output: Path, configure_step=None) -> Path:
    from kfp import compiler

    from vlp.pipelines.workload_pipelines import pipeline_arguments, pipeline_for

    pipeline = pipeline_for(spec, runtime.image, configure_step)
    arguments = pipeline_arguments(spec, runtime)
    output.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so a failed compile never leaves a half-written file.
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".yaml", dir=output.parent)
    os.close(fd)
    try:
        compiler.Compiler().compile(pipeline, temporary, pipeline_parameters=arguments)
        os.replace(temporary, output)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return output
