"""Run a KFP pipeline function in-process with kfp.local: each step is a subprocess of this interpreter."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path


def run_pipeline_locally(pipeline_func, arguments: dict[str, str], pipeline_root: Path, quiet: bool = False) -> str | None:
    """Runs the pipeline; returns its string output, or None if a step failed (the exit handler still ran)."""
    from kfp import local

    pipeline_root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root), raise_on_error=False)
    # Step logs go to stderr so that stdout can carry a single JSON document (`--json`).
    with contextlib.redirect_stdout(sys.stderr) if quiet else contextlib.nullcontext():
        task = pipeline_func(**arguments)
    try:
        return task.output
    except Exception:
        return None
