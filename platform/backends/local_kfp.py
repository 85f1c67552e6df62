"""Run a KFP pipeline function in-process with kfp.local: each step is a forked child of this interpreter."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from vlp.platform.backends.forked_steps import forked_steps


def run_pipeline_locally(pipeline_func, arguments: dict[str, str], pipeline_root: Path, quiet: bool = False,
                         tracking_uri: str | None = None) -> str | None:
    """Runs the pipeline; returns its string output, or None if a step failed (the exit handler still ran).
    `tracking_uri`: the MLflow store the steps use, opened once here so that each step finds it ready."""
    from kfp import local

    pipeline_root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root), raise_on_error=False)
    # Step logs go to stderr so that stdout can carry a single JSON document (`--json`).
    with contextlib.redirect_stdout(sys.stderr) if quiet else contextlib.nullcontext(), forked_steps(tracking_uri):
        task = pipeline_func(**arguments)
    try:
        return task.output
    except Exception:
        return None
