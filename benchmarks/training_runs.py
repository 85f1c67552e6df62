"""Launch one training run of vlp or of open_clip_train under torchrun, on the same shards and settings, and
measure it with the step clock (see worker_entry.py).

Both run as `torchrun --standalone --nproc_per_node P -m vlp.benchmarks.worker_entry … -- MODULE …` with the
same intra-op thread count per process (OMP_NUM_THREADS; VLP_THREADS_PER_PROC for vlp, as the pipeline sets it).
Each run starts fresh (a new MLflow run for vlp, a new log directory for open_clip), so nothing resumes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlp.platform.errors import VlpUserError
from vlp.benchmarks.pairs_dataset import brace_pattern, shard_paths
from vlp.benchmarks.stats import cpu_rate, steady_rate
from vlp.benchmarks.worker_entry import LAUNCHED_AT_ENV

BIN = Path(sys.executable).parent
OPEN_CLIP_PRECISION = {"fp32": "fp32", "bf16": "amp_bf16"}


class BenchFailed(VlpUserError):
    """A benchmarked command failed; the message names its log."""


@dataclass(frozen=True)
class TrainingSetup:
    """What both trainers get alike."""

    preset: str = "shapes-rn-tiny"
    batch_size: int = 256
    """Global batch size (open_clip's --batch-size is per process: batch_size / procs)."""
    procs: int = 2
    steps: int = 60
    skip_steps: int = 10
    """Steps left out of the steady-state rate (start-up, first batches, compilation)."""
    precision: str = "fp32"
    device: str = "cpu"
    workers: int = 0
    threads_per_proc: int = 1
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_steps: int = 10
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.batch_size % self.procs:
            raise VlpUserError(f"--batch-size {self.batch_size} is not divisible by --procs {self.procs}")
        if self.steps < self.skip_steps + 2:
            raise VlpUserError(f"--steps must be at least skip_steps + 2 = {self.skip_steps + 2}")
        if self.precision not in OPEN_CLIP_PRECISION:
            raise VlpUserError(f"--precision must be one of {', '.join(OPEN_CLIP_PRECISION)}")


@dataclass
class RunMeasurement:
    system: str
    variant: str
    repeat: int
    samples_per_second: float | None
    samples_per_cpu_second: float | None
    """Samples per CPU-second of all training processes and their loader workers (robust to other load)."""
    startup_seconds: float | None
    wall_seconds: float
    peak_rss_mb: float | None
    """Largest peak resident memory of any training process (DataLoader workers not included)."""
    cuda_allocated_mb: float | None
    steps: int
    threads: int | None
    ranks: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        rank0 = next((rank for rank in self.ranks if rank.get("rank") == 0), {})
        return {
            "system": self.system, "variant": self.variant, "repeat": self.repeat,
            "samples_per_second": self.samples_per_second, "samples_per_cpu_second": self.samples_per_cpu_second,
            "startup_seconds": self.startup_seconds,
            "wall_seconds": self.wall_seconds, "peak_rss_mb": self.peak_rss_mb, "cuda_allocated_mb": self.cuda_allocated_mb,
            "steps": self.steps, "threads": self.threads, "step_seconds_rank0": rank0.get("step_seconds", []),
        }


class TrainingWorkspace:
    """Shards, an MLflow store and a storage root shared by every run of one benchmark invocation."""

    def __init__(self, root: Path, data_dir: Path, setup: TrainingSetup):
        self.root = Path(root)
        self.data_dir = Path(data_dir)
        self.setup = setup
        self.tracking_uri = f"sqlite:///{self.root / 'mlflow.db'}"
        self.storage_root = str(self.root / "storage")
        self._counter = 0
        if len(shard_paths(self.data_dir)) < setup.procs * max(1, setup.workers):
            raise VlpUserError(f"{self.data_dir}: fewer shards than data-loading processes ({setup.procs * max(1, setup.workers)})")

    # -- vlp --------------------------------------------------------------------------------------------------
    def vlp_spec(self, overrides: list[str] = ()) -> dict[str, Any]:
        from vlp.platform.spec import spec_from_dict

        s = self.setup
        document = {
            "name": "bench-training",
            # Equal work: open_clip_train's default training transform (RandomResizedCrop, scale (0.9, 1.0)).
            "data": {"source": "shards", "train": str(self.data_dir), "workers": s.workers,
                     "augment": {"enabled": True, "scale": [0.9, 1.0]}},
            "model": {"arch": "clip", "preset": s.preset},
            "train": {
                "batch_size": s.batch_size, "max_steps": s.steps, "lr": s.lr, "weight_decay": s.weight_decay,
                "warmup_steps": s.warmup_steps, "precision": s.precision, "log_every": s.log_every,
                # No checkpoint inside the measured steps (open_clip_train saves only at the end of the epoch too).
                "checkpoint_every": s.steps + 1,
            },
            "resources": {"nodes": 1, "procs_per_node": s.procs, "gpus_per_node": s.procs if s.device == "cuda" else 0},
        }
        return spec_from_dict(document, list(overrides), source="bench").model_dump(mode="json", by_alias=True)

    def run_vlp(self, variant: str, repeat: int, overrides: list[str] = (), sdpa: str = "default",
                env: dict[str, str] | None = None) -> RunMeasurement:
        """`env`: extra environment for the workers (e.g. PYTHONPATH to run another checkout's trainer)."""
        from vlp.platform.layout import RunLayout
        from vlp.platform.storage import open_storage
        from vlp.platform.tracking.runs import start_run

        spec = self.vlp_spec(overrides)
        run_id = start_run("bench-training", f"{variant}-{repeat}", {"vlp.bench": "training"}, {}, self.tracking_uri)
        layout = RunLayout(self.storage_root, run_id)
        open_storage(layout.spec).write_bytes(layout.spec, json.dumps(spec).encode())
        module_args = [
            "--storage-root", self.storage_root, "--run-id", run_id,
            "--tracking-uri", self.tracking_uri, "--train-data", str(self.data_dir),
        ]
        env = {"VLP_THREADS_PER_PROC": str(self.setup.threads_per_proc), **(env or {})}
        return self._launch("vlp", variant, repeat, "vlp.workloads.train.main", module_args, env, sdpa=sdpa)

    # -- open_clip_train -------------------------------------------------------------------------------------
    def open_clip_model_dir(self) -> Path:
        """`--model local-dir:DIR`: DIR/open_clip_config.json holds vlp's preset as {"model_cfg": …}."""
        from vlp.workloads.models.catalog import load_model_cfg

        directory = self.root / "open_clip_model" / self.setup.preset
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "open_clip_config.json").write_text(json.dumps({"model_cfg": load_model_cfg(self.setup.preset)}))
        return directory

    def open_clip_args(self, logs: Path, name: str) -> list[str]:
        s = self.setup
        return [
            "--model", f"local-dir:{self.open_clip_model_dir()}",
            "--dataset-type", "webdataset", "--train-data", brace_pattern(self.data_dir),
            # One epoch of exactly `steps` global batches.
            "--train-num-samples", str(s.steps * s.batch_size), "--epochs", "1",
            "--batch-size", str(s.batch_size // s.procs), "--workers", str(s.workers),
            "--device", s.device, "--precision", OPEN_CLIP_PRECISION[s.precision],
            # vlp's optimizer settings: AdamW(betas=(0.9, 0.98), eps=1e-6), warm-up then cosine, no clipping.
            "--lr", str(s.lr), "--wd", str(s.weight_decay), "--beta1", "0.9", "--beta2", "0.98", "--eps", "1e-6",
            "--warmup", str(s.warmup_steps),
            # vlp's default objective: each process scores its rows against all gathered features.
            "--local-loss", "--gather-with-grad",
            "--log-every-n-steps", str(s.log_every), "--seed", "0",
            "--logs", str(logs), "--name", name, "--report-to", "",
        ]

    def run_open_clip(self, variant: str, repeat: int) -> RunMeasurement:
        name = f"{variant}-{repeat}-{time.time_ns()}"
        args = self.open_clip_args(self.root / "open_clip_logs", name)
        return self._launch("open_clip", variant, repeat, "open_clip_train.main", args, {}, open_clip_compat=True)

    # -- both ------------------------------------------------------------------------------------------------
    def _launch(self, system: str, variant: str, repeat: int, module: str, module_args: list[str], extra_env: dict[str, str],
                sdpa: str = "default", open_clip_compat: bool = False) -> RunMeasurement:
        self._counter += 1
        run_dir = self.root / "runs" / f"{system}-{variant}-{repeat}-{self._counter}"
        report_dir = run_dir / "report"
        run_dir.mkdir(parents=True, exist_ok=True)
        s = self.setup
        command = [
            str(BIN / "torchrun"), "--standalone", "--nnodes", "1", "--nproc_per_node", str(s.procs),
            # `-m --`: what follows is the module and its arguments, never torchrun's options (`--logs` would be).
            "-m", "--", "vlp.benchmarks.worker_entry", "--report", str(report_dir), "--device", s.device, "--sdpa", sdpa,
            *(["--open-clip-compat"] if open_clip_compat else []), "--", module, *module_args,
        ]
        threads = str(s.threads_per_proc)
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, **extra_env}
        log_path = run_dir / "output.log"
        started = time.perf_counter()
        env[LAUNCHED_AT_ENV] = repr(time.time())
        with open(log_path, "wb") as log:
            result = subprocess.run(command, cwd=run_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - started
        ranks = [json.loads(path.read_text()) for path in sorted(report_dir.glob("rank-*.json"))]
        if result.returncode != 0 or len(ranks) != s.procs:
            tail = log_path.read_text(errors="replace")[-1500:].strip().splitlines()
            raise BenchFailed(f"{system} run failed (exit {result.returncode}); log: {log_path}; last line: {tail[-1] if tail else ''}")
        rank0 = next(rank for rank in ranks if rank["rank"] == 0)
        cuda = [rank["cuda_allocated_mb"] for rank in ranks if rank.get("cuda_allocated_mb") is not None]
        return RunMeasurement(
            system=system, variant=variant, repeat=repeat,
            samples_per_second=steady_rate(rank0["step_seconds"], s.batch_size, s.skip_steps),
            samples_per_cpu_second=cpu_rate([rank["step_cpu_seconds"] for rank in ranks], s.batch_size, s.skip_steps),
            startup_seconds=rank0["startup_seconds"], wall_seconds=round(wall, 2),
            peak_rss_mb=max(rank["rss_mb"] for rank in ranks), cuda_allocated_mb=max(cuda) if cuda else None,
            steps=rank0["steps"], threads=rank0.get("threads"), ranks=ranks,
        )
