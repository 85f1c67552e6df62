"""Logs to one MLflow run from a background thread, so the training step never waits on the network.

Metrics, params and tags are queued; a worker thread sends them with `log_batch`. While the server is
unreachable a batch stays queued and is retried with backoff (MLflow's HTTP client retries each request
too), so an outage costs delivery latency, not the run. The metric queue is bounded: on overflow the oldest
points are dropped, counted, warned about as it happens and at `close`, and recorded as the run tag
`vlp.tracker.dropped_points`.

Resuming a run must not duplicate its history: before delivering anything the worker reads the last step
MLflow already holds for each metric and drops queued points at or below it. A checkpoint carries the points
that were still queued (`pending`), and a resumed trainer puts them back (`requeue`), so a crash loses none.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

MAX_BATCH = 1000  # MLflow's log_batch limit for metrics
MAX_PARAMS_PER_BATCH = 100
MAX_PARAM_LENGTH = 6000
MAX_BACKOFF_SECONDS = 5.0
# Error codes that say "this request is wrong", not "the server is away": retrying cannot help.
PERMANENT_ERROR_CODES = {"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "RESOURCE_DOES_NOT_EXIST", "INVALID_STATE", "PERMISSION_DENIED"}

MetricPoint = tuple[str, float, int, int]  # key, value, timestamp (ms), step


class MlflowTracker:
    def __init__(self, run_id: str, tracking_uri: str, max_buffered: int = 100_000, flush_seconds: float = 2.0):
        from mlflow.tracking import MlflowClient

        from vlp.platform.tracking.local_store import wait_for_sqlite_locks

        wait_for_sqlite_locks(tracking_uri)
        self.run_id = run_id
        self._client = MlflowClient(tracking_uri=tracking_uri)
        self._metrics: collections.deque[tuple[int, MetricPoint]] = collections.deque()
        self._params: dict[str, str] = {}
        self._tags: dict[str, str] = {}
        self._max_buffered = max_buffered
        self._flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._known_steps: dict[str, int] | None = None
        self.dropped = 0
        self.rejected = 0
        self._sequence = 0
        self._worker = threading.Thread(target=self._deliver_forever, name="mlflow-tracker", daemon=True)
        self._worker.start()

    def log_params(self, params: dict[str, str]) -> None:
        with self._lock:
            self._params.update({key: str(value)[:MAX_PARAM_LENGTH] for key, value in params.items()})
        self._wake.set()

    def set_tags(self, tags: dict[str, str]) -> None:
        with self._lock:
            self._tags.update({key: str(value) for key, value in tags.items()})
        self._wake.set()

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        timestamp = int(time.time() * 1000)
        self._enqueue([(key, float(value), timestamp, int(step)) for key, value in metrics.items()])

    def pending(self) -> list[MetricPoint]:
        """Metric points not yet confirmed delivered (a checkpoint stores them)."""
        with self._lock:
            return [point for _, point in self._metrics]

    def requeue(self, points: list[MetricPoint]) -> None:
        """Queue points a checkpoint carried; those MLflow already has are dropped before sending."""
        self._enqueue([(str(key), float(value), int(timestamp), int(step)) for key, value, timestamp, step in points])

    def close(self, timeout: float = 300.0) -> None:
        """Deliver what is queued, waiting up to `timeout` seconds for an unreachable server."""
        self._stopping = True
        self._wake.set()
        self._worker.join(timeout)
        undelivered = len(self._metrics)
        if undelivered:
            log.warning("MLflow unreachable at close: %d metric points not delivered", undelivered)
        if self.dropped:
            log.warning("MLflow tracker buffer overflowed: %d metric points dropped in all", self.dropped)
            self._try(lambda: self._client.set_tag(self.run_id, "vlp.tracker.dropped_points", str(self.dropped)))

    def _enqueue(self, points: list[MetricPoint]) -> None:
        with self._lock:
            for point in points:
                if len(self._metrics) >= self._max_buffered:
                    self._metrics.popleft()
                    self.dropped += 1
                    if _is_power_of_ten(self.dropped):
                        log.warning("MLflow tracker buffer full (%d points): %d oldest points dropped so far", self._max_buffered, self.dropped)
                self._sequence += 1
                self._metrics.append((self._sequence, point))

    def _deliver_forever(self) -> None:
        backoff = 0.5
        while True:
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            try:
                self._deliver_all()
                backoff = 0.5
            except Exception as err:  # server down or restarting: everything stays queued
                if self._stopping and not self._worker_should_wait():
                    return
                log.warning("MLflow delivery failed (%s: %s); %d metric points queued, retrying in %.1fs",
                            type(err).__name__, str(err).splitlines()[0][:200] if str(err) else "", len(self._metrics), backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                self._wake.set()
                continue
            if self._stopping and not self._worker_should_wait():
                return

    def _worker_should_wait(self) -> bool:
        with self._lock:
            return bool(self._metrics or self._params or self._tags)

    def _deliver_all(self) -> None:
        from mlflow.entities import Metric, Param, RunTag

        if self._known_steps is None:
            self._known_steps = self._last_logged_steps()
        with self._lock:
            params, tags = dict(self._params), dict(self._tags)
        if params or tags:
            items = sorted(params.items())
            chunks = [items[start : start + MAX_PARAMS_PER_BATCH] for start in range(0, len(items), MAX_PARAMS_PER_BATCH)] or [[]]
            for index, chunk in enumerate(chunks):
                batch_params = [Param(key, value) for key, value in chunk]
                batch_tags = [RunTag(key, value) for key, value in tags.items()] if index == 0 else []
                self._send(lambda: self._client.log_batch(self.run_id, params=batch_params, tags=batch_tags, synchronous=True),
                           f"{len(batch_params)} params and {len(batch_tags)} tags")
        with self._lock:
            for key, value in params.items():
                if self._params.get(key) == value:
                    del self._params[key]
            for key, value in tags.items():
                if self._tags.get(key) == value:
                    del self._tags[key]
        while True:
            with self._lock:
                batch = [self._metrics[i] for i in range(min(MAX_BATCH, len(self._metrics)))]
            if not batch:
                return
            fresh = [point for _, point in batch if point[3] > self._known_steps.get(point[0], -1)]
            if fresh:
                metrics = [Metric(key, value, timestamp, step) for key, value, timestamp, step in fresh]
                self._send(lambda: self._client.log_batch(self.run_id, metrics=metrics, synchronous=True), f"{len(metrics)} metric points")
            last_sequence = batch[-1][0]
            with self._lock:
                # Overflow may have dropped some of this batch meanwhile: remove by sequence, not by count.
                while self._metrics and self._metrics[0][0] <= last_sequence:
                    self._metrics.popleft()

    def _send(self, call, what: str) -> None:
        """Run one log_batch; a request MLflow refuses as invalid is dropped with a warning (retrying cannot help)."""
        from mlflow.exceptions import MlflowException

        try:
            call()
        except MlflowException as err:
            if err.error_code not in PERMANENT_ERROR_CODES:
                raise
            self.rejected += 1
            log.warning("MLflow refused %s for run %s (%s): %s; dropped", what, self.run_id, err.error_code, str(err).splitlines()[0][:300])

    def _last_logged_steps(self) -> dict[str, int]:
        """The last step MLflow holds per metric of this run (empty for a fresh run)."""
        run = self._client.get_run(self.run_id)
        steps = {}
        for key in run.data.metrics:
            history = self._client.get_metric_history(self.run_id, key)
            if history:
                steps[key] = max(point.step for point in history)
        return steps

    def _try(self, call) -> Any:
        try:
            return call()
        except Exception as err:
            log.warning("MLflow call failed: %s", type(err).__name__)
            return None


def _is_power_of_ten(count: int) -> bool:
    while count % 10 == 0:
        count //= 10
    return count == 1
