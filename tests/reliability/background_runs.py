"""Four `vlp run` started at once in one state directory (one SQLite store, one storage root, the same dataset
and registered model), in the background. They keep both cores busy while the fault scenarios mostly wait on
outages and restarts, so the fault fixtures start them and test_runs_at_once.py collects and checks them."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from jobs import VLP

RUNS, STEPS = 4, 4
MODEL = "concurrent-clip"
EXPERIMENT = {
    "name": "concurrent", "team": "tests", "seed": 1,
    "data": {"shapes": {"train_samples": 64, "eval_samples": 32, "shard_size": 16}},
    "model": {"preset": "shapes-vit-micro"},
    "train": {"batch_size": 8, "max_steps": STEPS, "warmup_steps": 1, "checkpoint_every": 2, "log_every": 1},
    "resources": {"nodes": 1, "procs_per_node": 1},
    # Evaluation is not under test here: the cheapest task keeps the step in the pipeline.
    "eval": {"batch_size": 32, "zeroshot": True, "retrieval": False, "linear_probe": False, "segmentation": False,
             "modality_gap": False, "per_domain": False, "plots": False},
    "register": {"model_name": MODEL},
}


@dataclass
class RunsAtOnce:
    work: Path
    home: Path
    env: dict[str, str]
    started: float
    processes: list[subprocess.Popen]
    logs: list[Path]
    _results: dict | None = field(default=None, repr=False)

    def results(self, timeout: float = 900) -> dict:
        """Wait for all four (once) and return exit codes, the `--json` documents and the step logs."""
        if self._results is None:
            documents = [process.communicate(timeout=timeout)[0] for process in self.processes]
            self._results = {"work": self.work, "home": self.home, "env": self.env, "started": self.started, "documents": documents,
                             "codes": [process.returncode for process in self.processes], "logs": [log.read_text() for log in self.logs]}
        return self._results

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def start_runs_at_once(work: Path, planted: dict[str, str]) -> RunsAtOnce:
    path = work / "experiment.yaml"
    path.write_text(yaml.safe_dump(EXPERIMENT))
    env = {**os.environ, **planted, "VLP_HOME": str(work / "home"), "PYTHONSAFEPATH": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    logs = [work / f"run-{index}.log" for index in range(RUNS)]
    processes = [subprocess.Popen([VLP, "run", str(path), "--json"], env=env, cwd=work, stdout=subprocess.PIPE, stderr=log.open("wb"), text=True)
                 for log in logs]
    return RunsAtOnce(work, work / "home", env, time.time(), processes, logs)
