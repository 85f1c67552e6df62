"""Logs to one MLflow run from a background thread, so the training step never waits on the network.

Metrics are queued; a worker sends them in batches. When the server is unreachable the batch is kept
and retried with backoff; the queue is bounded and, if it overflows, the oldest points are dropped and
counted (`close` warns with the count).
"""

from __future__ import annotations

import collections
import logging
import threading
import time

log = logging.getLogger(__name__)

MAX_BATCH = 1000


class MlflowTracker:
    def __init__(self, run_id: str, tracking_uri: str, max_buffered: int = 100_000, flush_seconds: float = 2.0):
        from mlflow.tracking import MlflowClient

        self.run_id = run_id
        self._client = MlflowClient(tracking_uri=tracking_uri)
        self._pending: collections.deque = collections.deque()
        self._max_buffered = max_buffered
        self._flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self.dropped = 0
        self._sequence = 0
        self._worker = threading.Thread(target=self._deliver_forever, name="mlflow-tracker", daemon=True)
        self._worker.start()

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, str(value)[:6000]) for key, value in params.items()]
        for start in range(0, len(items), 100):
            self._call_with_retry(lambda chunk=items[start : start + 100]: self._client.log_batch(self.run_id, params=chunk))

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self._call_with_retry(lambda: self._client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()]))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        with self._lock:
            for key, value in metrics.items():
                if len(self._pending) >= self._max_buffered:
                    self._pending.popleft()
                    self.dropped += 1
                self._sequence += 1
                self._pending.append((self._sequence, Metric(key, float(value), timestamp, step)))

    def close(self, timeout: float = 300.0) -> None:
        self._stopping = True
        self._wake.set()
        self._worker.join(timeout)
        if self._pending:
            log.warning("MLflow unreachable at close: %d metric points not delivered", len(self._pending))
        if self.dropped:
            log.warning("MLflow tracker buffer overflowed: %d metric points dropped", self.dropped)

    def _deliver_forever(self) -> None:
        backoff = 0.5
        while True:
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            while True:
                with self._lock:
                    batch = [self._pending[i] for i in range(min(MAX_BATCH, len(self._pending)))]
                    last_sequence = batch[-1][0] if batch else 0
                if not batch:
                    break
                try:
                    self._client.log_batch(self.run_id, metrics=[metric for _, metric in batch], synchronous=True)
                except Exception as err:  # server down or restarting: keep the batch, try again later
                    log.warning("MLflow log_batch failed (%s); %d points buffered, retrying", type(err).__name__, len(self._pending))
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                backoff = 0.5
                with self._lock:
                    # Overflow may have dropped some of this batch meanwhile: remove by sequence, not by count.
                    while self._pending and self._pending[0][0] <= last_sequence:
                        self._pending.popleft()
            if self._stopping:
                return

    def _call_with_retry(self, call, attempts: int = 8) -> None:
        delay = 0.5
        for attempt in range(attempts):
            try:
                call()
                return
            except Exception:
                if attempt == attempts - 1:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
