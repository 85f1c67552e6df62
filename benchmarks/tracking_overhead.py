"""Benchmark 5: what experiment tracking costs the training step. vlp's trainer runs in this process (one
process, all cores) with tracking off, with vlp's MLflow tracker (queued, delivered in batches by a background
thread), and with a tracker that calls MLflow inline on every log step (what `mlflow.log_metrics` in a training
loop does), alternating. Overhead is the step-time increase over tracking off.

Whole-run step times vary by several percent from run to run on a shared CPU, far more than logging every N
steps costs, so the tracking work is also measured directly: the wall time the training thread spends inside
tracker calls, plus the CPU time of the tracker's delivery thread (counted in full, as if it stole the training
cores), per step. That figure over the untracked step time is the overhead the budget (< 2%) is checked against."""

from __future__ import annotations

import json
import time
from pathlib import Path

from vlp.benchmarks.pairs_dataset import ensure_pairs_dataset, shard_paths
from vlp.benchmarks.report import BenchReport, Column
from vlp.benchmarks.stats import alternating, cpu_rate, ratio, steady_rate, summarize
from vlp.benchmarks.step_clock import StepClock

TRACKERS = ("off", "mlflow", "mlflow-inline")


class TimedTracker:
    """Passes every call on and adds up what the training thread waits in them, and the CPU time of the tracker's
    own delivery thread (read at `close`, before the final flush, which is an end-of-run cost)."""

    def __init__(self, inner):
        self.inner = inner
        self.call_seconds = 0.0
        self.delivery_cpu_seconds = 0.0

    def _timed(self, method, *args, **kwargs):
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            self.call_seconds += time.perf_counter() - started

    def log_params(self, params):
        return self._timed(self.inner.log_params, params)

    def set_tags(self, tags):
        return self._timed(self.inner.set_tags, tags)

    def log_metrics(self, metrics, step):
        return self._timed(self.inner.log_metrics, metrics, step)

    def pending(self):
        return self._timed(self.inner.pending)

    def requeue(self, points):
        return self._timed(self.inner.requeue, points)

    def close(self, timeout: float = 300.0) -> None:
        self.delivery_cpu_seconds = thread_cpu_seconds(getattr(self.inner, "_worker", None))
        self.inner.close(timeout)


def thread_cpu_seconds(thread) -> float:
    """CPU time a live thread of this process has used (0 for none)."""
    if thread is None or not thread.is_alive():
        return 0.0
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    except (AttributeError, OSError):
        return 0.0


class InlineMlflowTracker:
    """Sends every call to MLflow before returning: the training step waits for the store each log step."""

    def __init__(self, run_id: str, tracking_uri: str):
        from mlflow.tracking import MlflowClient

        self.run_id = run_id
        self.client = MlflowClient(tracking_uri=tracking_uri)

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(key, str(value)) for key, value in params.items()])

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(key, float(value), now, step) for key, value in metrics.items()])

    def pending(self) -> list:
        return []

    def requeue(self, points) -> None:
        pass

    def close(self, timeout: float = 300.0) -> None:
        pass


def run_tracking_overhead(workdir: Path, steps: int = 60, skip_steps: int = 10, batch_size: int = 256, log_every: int = 10,
                          repeats: int = 3, preset: str = "shapes-rn-tiny", server: bool = False, on_run=None) -> BenchReport:
    """`server`: log to an MLflow server on 127.0.0.1 (HTTP per request) instead of a SQLite file."""
    import contextlib

    from vlp.benchmarks.loopback import loopback_mlflow

    root = Path(workdir) / ("tracking-server" if server else "tracking")
    with loopback_mlflow(root / "server") if server else contextlib.nullcontext(f"sqlite:///{root / 'mlflow.db'}") as tracking_uri:
        return _measure(Path(workdir), root, tracking_uri, "MLflow server on 127.0.0.1" if server else "SQLite store",
                        steps, skip_steps, batch_size, log_every, repeats, preset, on_run)


def _measure(workdir: Path, root: Path, tracking_uri: str, store: str, steps: int, skip_steps: int, batch_size: int,
             log_every: int, repeats: int, preset: str, on_run) -> BenchReport:
    from vlp.platform.layout import RunLayout
    from vlp.platform.spec import spec_from_dict
    from vlp.platform.tracking.mlflow_tracker import MlflowTracker
    from vlp.platform.tracking.protocol import NullTracker
    from vlp.platform.tracking.runs import start_run
    from vlp.workloads.train.trainer import PretrainTrainer, TrainInputs

    data = ensure_pairs_dataset(workdir / "cache", max(8000, steps * batch_size // 4))
    root.mkdir(parents=True, exist_ok=True)
    spec = spec_from_dict({
        "name": "bench-tracking",
        "data": {"source": "shards", "train": str(data)},
        "model": {"preset": preset},
        "train": {"batch_size": batch_size, "max_steps": steps, "warmup_steps": 10, "log_every": log_every, "checkpoint_every": steps + 1},
    }, source="bench")
    factories = {
        "off": lambda run_id: NullTracker(),
        "mlflow": lambda run_id: MlflowTracker(run_id, tracking_uri),
        "mlflow-inline": lambda run_id: InlineMlflowTracker(run_id, tracking_uri),
    }
    report = BenchReport(
        name="tracking",
        title=f"Tracking overhead: step time with MLflow logging every {log_every} steps vs off "
              f"({preset}, batch {batch_size}, 1 process, {store})",
        settings={"steps": steps, "skip_steps": skip_steps, "batch_size": batch_size, "log_every": log_every,
                  "repeats": repeats, "preset": preset, "tracking_uri": tracking_uri},
        columns=[
            Column("tracker", "tracking"), Column("samples_per_second", "samples/s (median)", "{:.0f}"),
            Column("range", "min–max"), Column("step_ms", "ms/step", "{:.2f}"), Column("overhead", "step time vs off", "{:+.2%}"),
            Column("cpu_ms", "CPU ms/step", "{:.2f}"), Column("cpu_overhead", "CPU time vs off", "{:+.2%}"),
            Column("tracking_ms", "tracking work ms/step", "{:.3f}"), Column("direct_overhead", "tracking work / step", "{:.3%}"),
        ],
    )
    rates: dict[str, list[float]] = {name: [] for name in TRACKERS}
    cpu_rates: dict[str, list[float]] = {name: [] for name in TRACKERS}
    shards = [str(path) for path in shard_paths(data)]
    direct_ms: dict[str, list[float]] = {name: [] for name in TRACKERS}
    for repeat, name in alternating(TRACKERS, repeats):
        run_id = start_run("bench-tracking", f"{name}-{repeat}", {"vlp.bench": "tracking"}, {}, tracking_uri)
        layout = RunLayout(str(root / "storage"), run_id)
        timed = []

        def make_tracker(name=name, run_id=run_id):
            timed.append(TimedTracker(factories[name](run_id)))
            return timed[-1]

        inputs = TrainInputs(layout=layout, train_shards=shards, tracker_factory=make_tracker)
        clock = StepClock("cpu")
        try:
            PretrainTrainer(spec, inputs).train()
        finally:
            clock.close()
        rate = steady_rate(clock.step_seconds(), batch_size, skip_steps)
        rates[name].append(rate)
        tracking_seconds = sum(tracker.call_seconds + tracker.delivery_cpu_seconds for tracker in timed)
        direct_ms[name].append(1000.0 * tracking_seconds / steps)
        # CPU time of this process: the training threads and the tracker's delivery thread.
        cpu_rates[name].append(cpu_rate([clock.step_cpu_seconds()], batch_size, skip_steps))
        report.runs.append({"tracker": name, "repeat": repeat, "samples_per_second": rate, "samples_per_cpu_second": cpu_rates[name][-1],
                            "tracking_ms_per_step": direct_ms[name][-1], "step_seconds": clock.step_seconds()})
        if on_run is not None:
            on_run(name, repeat, rate)

    off = summarize(rates["off"])["median"]
    cpu_off = summarize(cpu_rates["off"])["median"]
    for name in TRACKERS:
        rate = summarize(rates[name])
        cpu = summarize(cpu_rates[name])["median"]
        slowdown, cpu_slowdown = ratio(off, rate["median"]), ratio(cpu_off, cpu)
        tracking_ms = summarize(direct_ms[name])["median"]
        report.rows.append({
            "tracker": name, "samples_per_second": rate["median"], "range": f"{rate['min']:.0f}–{rate['max']:.0f}",
            "step_ms": 1000.0 * batch_size / rate["median"], "overhead": None if slowdown is None else slowdown - 1.0,
            "cpu_ms": None if not cpu else 1000.0 * batch_size / cpu, "cpu_overhead": None if cpu_slowdown is None else cpu_slowdown - 1.0,
            "tracking_ms": tracking_ms, "direct_overhead": None if not off else tracking_ms / (1000.0 * batch_size / off),
        })
    report.summary = {f"{row['tracker']}_{kind}": row[kind] for row in report.rows if row["tracker"] != "off"
                      for kind in ("overhead", "cpu_overhead", "direct_overhead")}
    report.notes = ["step time vs off = (step time with tracking) / (step time without) − 1, medians over the repeats; "
                    "run-to-run noise is several percent, negative values are noise",
                    "tracking work = wall time inside tracker calls on the training thread + CPU time of the delivery "
                    "thread, per step; over the untracked step time it is the overhead checked against the 2% budget"]
    return report.finish()
