"""What `vlp run` shows while the pipeline runs: its steps with state and duration, a training bar fed from the
run's MLflow metrics (step of total, loss, samples/s, time left), and a closing summary.

On a terminal the view redraws in place (rich); otherwise each change is one plain line. Colour follows rich,
which honours NO_COLOR. Step output goes to log files (vlp.platform.backends.step_logs); `-v` streams it too.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass

from vlp.platform.backends.step_logs import StepLogs, last_lines

POLL_SECONDS = 2.0
PLAIN_PROGRESS_SECONDS = 10.0
FAILED_STEP_LINES = 20
STATE_MARKS = {"pending": "·", "running": "…", "done": "✓", "failed": "✗"}


@dataclass
class TrainingProgress:
    step: int = 0
    total: int | None = None
    loss: float | None = None
    samples_per_second: float | None = None
    seconds_left: float | None = None

    def describe(self) -> str:
        parts = [f"step {self.step}" + (f"/{self.total}" if self.total else "")]
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        if self.samples_per_second is not None:
            parts.append(f"{self.samples_per_second:,.0f} samples/s")
        if self.seconds_left is not None:
            parts.append(f"{_duration(self.seconds_left)} left")
        return "  ".join(parts)


class TrainingWatcher:
    """Polls the run's `train/loss` and `train/samples_per_second` while a training step runs."""

    def __init__(self, tracking_uri: str, run_key: str, total_steps: int | None):
        self.tracking_uri, self.run_key = tracking_uri, run_key
        self.progress: TrainingProgress | None = None
        self._total = total_steps
        self._run_id: str | None = None
        self._first: tuple[float, int] | None = None

    def poll(self) -> TrainingProgress | None:
        from vlp.platform.backends.forked_steps import between_forks

        with between_forks():
            return self._poll()

    def _poll(self) -> TrainingProgress | None:
        from vlp.platform.tracking.runs import client, find_run_by_key

        try:
            if self._run_id is None:
                self._run_id = find_run_by_key(self.run_key, self.tracking_uri)
                if self._run_id is None:
                    return None
            mlflow_client = client(self.tracking_uri)
            losses = mlflow_client.get_metric_history(self._run_id, "train/loss")
            if not losses:
                return None
            latest = max(losses, key=lambda point: point.step)
            speeds = mlflow_client.get_metric_history(self._run_id, "train/samples_per_second")
        except Exception:  # a busy store must not stop the run: the next poll tries again
            return self.progress
        now = time.monotonic()
        if self._first is None:
            self._first = (now, latest.step)
        seconds_left = None
        started_at, first_step = self._first
        if self._total and latest.step > first_step:
            rate = (latest.step - first_step) / (now - started_at)
            seconds_left = max(0.0, (self._total - latest.step) / rate)
        speed = max(speeds, key=lambda point: point.step).value if speeds else None
        self.progress = TrainingProgress(latest.step, self._total, latest.value, speed, seconds_left)
        return self.progress


class RunConsole:
    """Shows the steps of one local run as they go. Use as a context manager around `run_experiment`."""

    def __init__(self, step_names: list[str], step_logs_dir, watcher: TrainingWatcher, training_steps: set[str],
                 verbose: bool = False, out=None):
        from rich.console import Console

        self.out = out or sys.stdout
        self.console = Console(file=self.out, highlight=False, soft_wrap=True)
        self.live_view = self.console.is_terminal and not verbose
        self.step_names = step_names
        self.watcher = watcher
        self.training_steps = training_steps
        self.step_logs = StepLogs(step_logs_dir, echo=self.out if verbose else None, on_change=self._on_change)
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_forever, name="vlp-run-console", daemon=True)
        self._live = None
        self._last_plain_progress = 0.0
        self._lock = threading.Lock()

    def __enter__(self) -> "RunConsole":
        if self.live_view:
            from rich.live import Live

            self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        self._poller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._poller.join(5)
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(*exc)

    # What changes
    def _on_change(self) -> None:
        if self._live is not None:
            self._live.update(self._render())
            return
        with self._lock:
            for record in self.step_logs.steps:
                announced = getattr(record, "_announced", None)
                if announced != record.state:
                    record._announced = record.state  # type: ignore[attr-defined]
                    when = "" if record.state == "running" else f" in {_duration(record.seconds)}"
                    self.console.print(f"{record.name}: {record.state}{when}", markup=False)

    def _poll_forever(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            if not any(record.state == "running" and record.name in self.training_steps for record in self.step_logs.steps):
                continue
            progress = self.watcher.poll()
            if progress is None:
                continue
            if self._live is not None:
                self._live.update(self._render())
            elif time.monotonic() - self._last_plain_progress >= PLAIN_PROGRESS_SECONDS:
                self._last_plain_progress = time.monotonic()
                self.console.print(f"  training: {progress.describe()}", markup=False)

    def _render(self):
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 2))
        records = {}
        for record in self.step_logs.steps:
            records[record.name] = record
        names = self.step_names + [name for name in records if name not in self.step_names]
        styles = {"pending": "dim", "running": "yellow", "done": "green", "failed": "red"}
        for name in names:
            record = records.get(name)
            state = record.state if record else "pending"
            table.add_row(Text(STATE_MARKS[state], style=styles[state]), Text(name), Text(state, style=styles[state]),
                          Text(_duration(record.seconds) if record else ""))
        parts = [table]
        progress = self.watcher.progress
        if progress is not None:
            bar = Table.grid(padding=(0, 2))
            bar.add_row(Text("training"), ProgressBar(total=progress.total or None, completed=progress.step, width=30), Text(progress.describe()))
            parts.append(bar)
        return Group(*parts)


class AttachedConsole(RunConsole):
    """`vlp runs attach`: the same view, drawn from the step states a background run writes to its log folder."""

    def replay(self, attached) -> None:
        """Brings the steps up to the background run's `steps.json` (called on each poll)."""
        replay_step_states(self.step_logs)
        self._on_change()


def replay_step_states(step_logs: StepLogs) -> StepLogs:
    """`step_logs`' records brought up to the `steps.json` a background run keeps in the same folder."""
    from pathlib import Path

    from vlp.pipelines.local_run import read_step_states
    from vlp.platform.backends.step_logs import StepRecord

    now = time.monotonic()
    records = {(record.name, str(record.log)): record for record in step_logs.steps}
    for state in read_step_states(step_logs.directory):
        record = records.get((state["name"], state["log"]))
        if record is None:
            record = StepRecord(state["name"], Path(state["log"]), now - state["seconds"])
            step_logs.steps.append(record)
        record.started = now - state["seconds"]
        if state["exit_code"] is not None:
            record.ended, record.exit_code = now, state["exit_code"]
    return step_logs


def attached_console(attached, spec) -> AttachedConsole:
    """The console for a background run (its steps named by the experiment when it is known)."""
    from vlp.pipelines.step_table import steps_of

    steps = steps_of(spec.workload) if spec is not None else ()
    watcher = TrainingWatcher(attached.tracking_uri, attached.run_key, spec.train.max_steps if spec is not None else None)
    # Its StepLogs only holds the records `replay` reads; the background run's files are never written here.
    return AttachedConsole([step.name for step in steps], attached.log_dir, watcher, {step.name for step in steps if step.kind == "train"})


def failure_report(step_logs: StepLogs) -> list[str]:
    """The failing steps' last lines and where their logs are."""
    lines = []
    for record in step_logs.failed():
        lines.append(f"step {record.name} failed (exit {record.exit_code}); last lines of {record.log}:")
        lines += [f"  | {line}" for line in last_lines(record.log, FAILED_STEP_LINES)]
    return lines


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
