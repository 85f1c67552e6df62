"""System metrics (CPU, memory, disk, network, GPUs: MLflow's `system/…` metrics) on the run while a local
pipeline runs: the machine `vlp run` is on is the machine its training job is on. MLflow's monitor needs
psutil; without it the run goes on without them and says so once."""

from __future__ import annotations

import contextlib
import logging
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
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        from vlp.platform.tracking.runs import find_run_by_key

        while not stop.wait(1.0):
            try:
                run_id = find_run_by_key(run_key, tracking_uri)
            except Exception:  # the store is busy or not there yet
                continue
            if run_id is not None:
                monitor = SystemMetricsMonitor(run_id, sampling_interval=sampling_seconds, resume_logging=True, tracking_uri=tracking_uri)
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
