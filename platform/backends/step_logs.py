"""Where a local pipeline's output goes: one log file per step under the run's log folder, kfp.local's own
messages in `pipeline.log` beside them, and what a console needs to show (each step's state and duration)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

PIPELINE_LOG = "pipeline.log"


@dataclass
class StepRecord:
    name: str
    log: Path
    started: float
    ended: float | None = None
    exit_code: int | None = None

    @property
    def state(self) -> str:
        if self.exit_code is None:
            return "running"
        return "done" if self.exit_code == 0 else "failed"

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.started


@dataclass
class StepLogs:
    """`directory` gets `<step>.log` per step (`<step>-2.log` for a second attempt or a second task of one step).
    `echo`: also write every line there (`vlp run -v`). `on_change` is called after a step starts or ends."""

    directory: Path
    echo: TextIO | None = None
    on_change: Callable[[], None] | None = None
    steps: list[StepRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def pipeline_log(self) -> Path:
        return self.directory / PIPELINE_LOG

    def start(self, name: str) -> StepRecord:
        with self._lock:
            attempts = sum(record.name == name for record in self.steps)
            log = self.directory / (f"{name}.log" if attempts == 0 else f"{name}-{attempts + 1}.log")
            record = StepRecord(name, log, time.monotonic())
            self.steps.append(record)
        self._changed()
        return record

    def finish(self, record: StepRecord, exit_code: int) -> None:
        record.ended, record.exit_code = time.monotonic(), exit_code
        self._changed()

    def failed(self) -> list[StepRecord]:
        return [record for record in self.steps if record.state == "failed"]

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


def step_name(executor_args: list[str]) -> str:
    """The pipeline step a kfp executor call runs: its component function, as the step table names it; prefixed
    `trial-N-` when it runs for one trial of a sweep (its runtime says so), so each trial's logs stay apart."""
    arguments = dict(zip(executor_args, executor_args[1:]))
    name = arguments.get("--function_to_execute", "step").replace("_", "-")
    trial = _sweep_trial(arguments.get("--executor_input"))
    return f"trial-{trial}-{name}" if trial is not None else name


def _sweep_trial(executor_input: str | None) -> int | None:
    import json

    try:
        runtime_json = json.loads(executor_input)["inputs"]["parameterValues"]["runtime_json"]
        return json.loads(runtime_json)["sweep_trial"]["number"]
    except (TypeError, KeyError, ValueError):
        return None


def last_lines(path: Path, count: int = 20) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-count:]
    except FileNotFoundError:
        return []
