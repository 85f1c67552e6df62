"""System metrics (CPU, memory, disk, network, GPUs: MLflow's `system/…` metrics) on the run.

- A local run: while its pipeline runs, from the `vlp run` process (the machine `vlp run` is on is the machine its
  training job is on), `system_metrics_while_running`.
- A cluster run (and each trial of a local sweep): from the training job's rank-0 worker, for as long as it trains:
  `python -m vlp.platform.tracking.system_metrics MODULE ARGS…` runs MODULE as `-m` would, with MLflow's monitor on
  the run named by `--run-id`/`--tracking-uri` in ARGS (`worker_command` wraps a worker's module this way).

MLflow's monitor needs psutil; without it the run goes on without them and says so once."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from typing import Iterator

log = logging.getLogger(__name__)
SAMPLING_SECONDS = 5.0


@contextlib.contextmanager
def system_metrics_while_running(tracking_uri: str, run_key: str, sampling_seconds: float = SAMPLING_SECONDS) -> Iterator[None]:
    """Logs `system/*` metrics on the run tagged `run_key` from when it appears until the block ends."""
    try:
        import psutil  # noqa: F401 - MLflow's CPU and memory monitors need it
    except ImportError:
        log.warning("system metrics are off: install psutil to record CPU, memory and disk use on the run")
        yield
        return
    # MLflow announces each start and stop at INFO on stderr; the console is vlp's.
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    stop = threading.Event()
    monitors = []

    def start_when_the_run_exists() -> None:
        from vlp.platform.backends.forked_steps import between_forks
        from vlp.platform.tracking.runs import find_run_by_key

        while not stop.wait(1.0):
            try:
                with between_forks():
                    run_id = find_run_by_key(run_key, tracking_uri)
            except Exception:  # the store is busy or not there yet
                continue
            if run_id is not None:
                monitor = monitor_between_forks(run_id, sampling_seconds, tracking_uri)
                monitor.start()
                monitors.append(monitor)
                return

    waiter = threading.Thread(target=start_when_the_run_exists, name="vlp-system-metrics", daemon=True)
    waiter.start()
    try:
        yield
    finally:
        stop.set()
        waiter.join(10)
        for monitor in monitors:
            with contextlib.suppress(Exception):
                monitor.finish()


def monitor_between_forks(run_id: str, sampling_seconds: float, tracking_uri: str):
    """MLflow's monitor, for a process that forks steps: its thread calls the store only inside `between_forks()`
    (it holds the guard from one sleep to the next), so a step is never forked while it is inside SQLite."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    from vlp.platform.backends.forked_steps import between_forks

    class SleepsOutsideTheGuard:
        def __init__(self, event: threading.Event, guard):
            self.event, self.guard = event, guard

        def wait(self, timeout: float | None = None) -> bool:
            self.guard.release()
            try:
                return self.event.wait(timeout)
            finally:
                self.guard.acquire()

        def is_set(self) -> bool:
            return self.event.is_set()

        def set(self) -> None:
            self.event.set()

    class MonitorBetweenForks(SystemMetricsMonitor):
        def monitor(self) -> None:
            guard = between_forks()
            with guard:
                self._shutdown_event = SleepsOutsideTheGuard(self._shutdown_event, guard)
                super().monitor()

    with between_forks():  # resuming reads the run's last system step
        return MonitorBetweenForks(run_id, sampling_interval=sampling_seconds, resume_logging=True, tracking_uri=tracking_uri)


def worker_command(module: str, args: list[str]) -> tuple[str, list[str]]:
    """(module, args) that run `module args` with system metrics from its rank-0 process."""
    return __name__, [module, *args]


def _option(args: list[str], flag: str) -> str | None:
    for name, value in zip(args, args[1:]):
        if name == flag:
            return value
    return None


def _monitor_for_rank_zero(args: list[str]):
    """MLflow's monitor on the run the worker logs into, started; None on other ranks, without a run id, or without psutil."""
    run_id, tracking_uri = _option(args, "--run-id"), _option(args, "--tracking-uri")
    if os.environ.get("RANK", "0") != "0" or not run_id:
        return None
    try:
        import psutil  # noqa: F401 - MLflow's CPU and memory monitors need it
    except ImportError:
        log.warning("system metrics are off: install psutil to record CPU, memory and disk use on the run")
        return None
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    monitor = SystemMetricsMonitor(run_id, sampling_interval=SAMPLING_SECONDS, resume_logging=True, tracking_uri=tracking_uri)
    monitor.start()
    return monitor


def main(argv: list[str]) -> None:
    import runpy

    if not argv:
        raise SystemExit("usage: python -m vlp.platform.tracking.system_metrics MODULE [ARGS...]")
    monitor = _monitor_for_rank_zero(argv[1:])
    try:
        sys.argv = list(argv)
        runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
    finally:
        if monitor is not None:
            with contextlib.suppress(Exception):
                monitor.finish()


if __name__ == "__main__":
    main(sys.argv[1:])
