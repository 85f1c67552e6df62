"""Benchmark 3: what `vlp run` adds around the training job, against launching the same job with torchrun.

Both paths train the same spec on the same (already generated) shards:

- `vlp run FILE --set …`: the KFP pipeline under kfp.local, each step a forked process, TorchX launching torchrun;
- direct: a fresh `python -m vlp.benchmarks.direct_launch` process that does what a researcher's launch script
  does: open the MLflow run, store the spec, start torchrun in the spec's shape (one agent per node) on the module.

Evaluation and registration are switched off (`eval.*=false`, `register.enabled=false`) so that neither path
does work the other does not: their step processes still run, and count as orchestration. Overhead is
`vlp run` wall time minus direct wall time (medians over alternating repeats); the table also breaks the run
down by pipeline task, from kfp.local's own log lines.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from vlp.benchmarks.report import BenchReport, Column
from vlp.benchmarks.stats import alternating, summarize
from vlp.benchmarks.training_runs import BenchFailed

BIN = Path(sys.executable).parent
EVAL_OFF = ("eval.zeroshot=false", "eval.retrieval=false", "eval.linear_probe=false", "eval.segmentation=false",
            "eval.modality_gap=false", "eval.per_domain=false", "eval.plots=false", "register.enabled=false")
TASK_LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - INFO - (Executing task|Task) '([\w-]+)'(?: finished)?")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_orchestration(experiment: Path, workdir: Path, overrides: list[str] = (), repeats: int = 3, on_run=None) -> BenchReport:
    from vlp.platform.spec import load_spec

    overrides = [*overrides, *EVAL_OFF]
    spec = load_spec(experiment, overrides)  # a bad file or override fails here, before anything runs
    home = Path(workdir) / "orchestration-home"
    env = {**os.environ, "VLP_HOME": str(home), "PYTHONSAFEPATH": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    # Warm-up run, not measured: creates the MLflow store and generates the shards, which both paths then reuse.
    warm = _vlp_run(experiment, overrides, env, Path(workdir) / "orchestration-logs" / "warmup.log")
    train_uri = _train_uri(warm["run_id"], home)
    report = BenchReport(
        name="orchestration",
        title=f"Orchestration overhead: `vlp run {experiment.name}` vs torchrun directly "
              f"({spec.resources.world_size} processes, evaluation and registration off)",
        settings={"experiment": str(experiment), "overrides": overrides, "repeats": repeats, "vlp_home": str(home),
                  "world_size": spec.resources.world_size},
        columns=[Column("what", "what"), Column("seconds", "seconds (median)", "{:.1f}"), Column("range", "min–max")],
    )
    walls: dict[str, list[float]] = {"vlp run": [], "torchrun directly": []}
    tasks: dict[str, list[float]] = {}
    for repeat, path in alternating(list(walls), repeats):
        log_path = Path(workdir) / "orchestration-logs" / f"{path.replace(' ', '-')}-{repeat}.log"
        started = time.perf_counter()
        if path == "vlp run":
            _vlp_run(experiment, overrides, env, log_path)
            for task, seconds in task_durations(log_path.read_text(errors="replace")).items():
                tasks.setdefault(task, []).append(seconds)
        else:
            _direct_run(spec, train_uri, home, env, log_path)
        wall = time.perf_counter() - started
        walls[path].append(wall)
        report.runs.append({"path": path, "repeat": repeat, "seconds": wall})
        if on_run is not None:
            on_run(path, repeat, wall)

    def row(what: str, values: list[float]) -> dict:
        summary = summarize(values)
        return {"what": what, "seconds": summary["median"], "range": f"{summary['min']:.1f}–{summary['max']:.1f}"}

    run_median = summarize(walls["vlp run"])["median"]
    direct_median = summarize(walls["torchrun directly"])["median"]
    report.rows = [row("vlp run (whole pipeline)", walls["vlp run"]), row("torchrun directly", walls["torchrun directly"])]
    report.rows.append({"what": "overhead (vlp run − direct)", "seconds": run_median - direct_median, "range": None})
    report.rows += [row(f"  task {task}", values) for task, values in tasks.items()]
    report.summary = {"overhead_seconds": run_median - direct_median, "vlp_run_seconds": run_median,
                      "direct_seconds": direct_median, "task_seconds": {task: summarize(v)["median"] for task, v in tasks.items()}}
    return report.finish()


def task_durations(log_text: str) -> dict[str, float]:
    """Seconds from "Executing task 'x'" to "Task 'x' finished", per task, from kfp.local's log."""
    started: dict[str, datetime] = {}
    durations: dict[str, float] = {}
    for line in ANSI.sub("", log_text).splitlines():
        match = TASK_LINE.match(line)
        if not match:
            continue
        stamp, kind, task = match.groups()
        moment = datetime.strptime(stamp, "%H:%M:%S.%f")
        if kind == "Executing task":
            started[task] = moment
        elif task in started and "finished" in line:
            durations[task] = (moment - started.pop(task)).total_seconds() % 86400  # a run may pass midnight
    return durations


def _vlp_run(experiment: Path, overrides: list[str], env: dict, log_path: Path) -> dict:
    command = [str(BIN / "vlp"), "run", str(experiment), *[arg for o in overrides for arg in ("--set", o)], "--json"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        result = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=log)
    if result.returncode != 0:
        raise BenchFailed(f"vlp run failed (exit {result.returncode}); log: {log_path}")
    outcome = json.loads(result.stdout)
    if outcome.get("status") != "FINISHED":
        raise BenchFailed(f"vlp run ended {outcome.get('status')}: {outcome.get('error', '')[:200]}; log: {log_path}")
    return outcome


def _train_uri(run_id: str, home: Path) -> str:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}").get_run(run_id).data.tags["vlp.data.train"]


def _direct_run(spec, train_uri: str, home: Path, env: dict, log_path: Path) -> None:
    """What a launch script does, in its own fresh process: see `direct_launch`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    spec_file = log_path.with_suffix(".spec.json")
    spec_file.write_text(json.dumps(spec.model_dump(mode="json", by_alias=True)))
    command = [sys.executable, "-m", "vlp.benchmarks.direct_launch", "--spec-json", str(spec_file),
               "--train-uri", train_uri, "--home", str(home)]
    with open(log_path, "wb") as log:
        result = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise BenchFailed(f"direct torchrun failed (exit {result.returncode}); log: {log_path}")
