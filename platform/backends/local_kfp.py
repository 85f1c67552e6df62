"""Run a KFP pipeline function in-process with kfp.local: each step is a forked child of this interpreter."""

from __future__ import annotations

import contextlib
import sys
import warnings
from pathlib import Path

from vlp.platform.backends.forked_steps import forked_steps


def run_pipeline_locally(pipeline_func, arguments: dict[str, str], pipeline_root: Path, quiet: bool = False,
                         tracking_uri: str | None = None, step_logs=None) -> str | None:
    """Runs the pipeline; returns its string output, or None if a step failed (the exit handler still ran).
    `tracking_uri`: the MLflow store the steps use, opened once here so that each step finds it ready.
    `step_logs` (StepLogs): each step's output goes to its own file and kfp.local's messages (it logs through the
    root logger onto stdout) to `pipeline.log`, copied to `step_logs.echo` when that is set; without it everything
    is printed, on stderr when `quiet` so that stdout can carry a single JSON document (`--json`)."""
    from kfp import local

    pipeline_root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root), raise_on_error=False)
    with contextlib.ExitStack() as stack:
        if step_logs is not None:
            log = stack.enter_context(open(step_logs.pipeline_log, "a", buffering=1))
            into = _Tee(log, step_logs.echo) if step_logs.echo is not None else log
            stack.enter_context(contextlib.redirect_stdout(into))
            # kfp.local warns about every step's non-Python base image (vlp's image has Python): those go to the log too.
            stack.enter_context(warnings.catch_warnings())
            warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: into.write(
                warnings.formatwarning(message, category, filename, lineno, line))
        elif quiet:
            stack.enter_context(contextlib.redirect_stdout(sys.stderr))
        stack.enter_context(forked_steps(tracking_uri, step_logs))
        task = pipeline_func(**arguments)
    try:
        return task.output
    except Exception:
        return None


class _Tee:
    def __init__(self, *streams):
        self._streams = streams

    def write(self, text: str) -> int:
        for stream in self._streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self._streams:
            stream.flush()

    def isatty(self) -> bool:
        return False
