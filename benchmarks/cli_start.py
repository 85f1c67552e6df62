"""Benchmark 4: how long the CLI takes to answer: `vlp --help` and `vlp runs list` (against a store that exists,
after one warm-up call), beside the floor of starting this Python interpreter at all. Each command is a fresh
process, run alternately with the others."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from vlp.benchmarks.report import BenchReport, Column
from vlp.benchmarks.stats import alternating, summarize
from vlp.benchmarks.training_runs import BenchFailed

BIN = Path(sys.executable).parent
HELP_TARGET_SECONDS = 0.3


def commands() -> dict[str, list[str]]:
    return {
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
        "vlp --help": [str(BIN / "vlp"), "--help"],
        "vlp runs list": [str(BIN / "vlp"), "runs", "list"],
    }


def run_cli_start(workdir: Path, repeats: int = 10) -> BenchReport:
    home = Path(workdir) / "cli-home"
    env = {**os.environ, "VLP_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("VLP_PROFILE", None)
    named = commands()
    for command in named.values():  # warm-up: creates the MLflow store, fills the OS file cache
        _timed(command, env)
    seconds: dict[str, list[float]] = {name: [] for name in named}
    report = BenchReport(
        name="cli",
        title="CLI start: wall time of a fresh process per command",
        settings={"repeats": repeats, "vlp_home": str(home), "help_target_seconds": HELP_TARGET_SECONDS},
        columns=[Column("command", "command"), Column("seconds", "seconds (median)", "{:.3f}"), Column("range", "min–max")],
    )
    for repeat, name in alternating(list(named), repeats):
        wall = _timed(named[name], env)
        seconds[name].append(wall)
        report.runs.append({"command": name, "repeat": repeat, "seconds": wall})
    for name, values in seconds.items():
        summary = summarize(values)
        report.rows.append({"command": name, "seconds": summary["median"], "range": f"{summary['min']:.3f}–{summary['max']:.3f}"})
    medians = {row["command"]: row["seconds"] for row in report.rows}
    report.summary = {
        "help_seconds": medians["vlp --help"], "runs_list_seconds": medians["vlp runs list"],
        "python_floor_seconds": medians["python -c pass (floor)"],
        "help_under_target": medians["vlp --help"] < HELP_TARGET_SECONDS,
    }
    return report.finish()


def _timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise BenchFailed(f"{' '.join(command[-2:])} exited {result.returncode}: {result.stderr.decode(errors='replace')[-300:]}")
    return wall
