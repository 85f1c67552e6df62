"""Run a training module under the step clock: `python -m vlp.benchmarks.worker_entry --report DIR -- MODULE ARGS…`.

torchrun starts this in place of the module (`-m vlp.benchmarks.worker_entry … open_clip_train.main …`);
it runs the module as `__main__`, then writes `DIR/rank-<RANK>.json` with when each optimizer step finished,
the wall-clock time of the first step (start-up is measured from `VLP_BENCH_LAUNCHED_AT`, set by the launcher)
and peak memory. Both trainers under comparison go through exactly this.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
from pathlib import Path

import torch

from vlp.benchmarks.step_clock import StepClock, peak_memory_mb

LAUNCHED_AT_ENV = "VLP_BENCH_LAUNCHED_AT"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    # Everything after `--` belongs to the module: its options (open_clip's --device, --logs) must not be read here.
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        raise SystemExit("usage: worker_entry --report DIR [options] -- MODULE [ARGS...]")
    split = argv.index("--")
    own, (module, *module_args) = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report", required=True, help="directory for rank-<RANK>.json")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--sdpa", default="default", choices=("default", "math"),
                        help="math: force the unfused reference attention (what hand-written attention costs)")
    parser.add_argument("--open-clip-compat", action="store_true",
                        help="let open_clip_train run with the installed torch and webdataset (see open_clip_compat)")
    options = parser.parse_args(own)
    if options.open_clip_compat:
        open_clip_compat()

    clock = StepClock(options.device)
    exit_code = 0
    sys.argv = [module, *module_args]
    try:
        if options.sdpa == "math":
            from torch.nn.attention import SDPBackend, sdpa_kernel

            with sdpa_kernel([SDPBackend.MATH]):
                runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        exit_code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if exit_code:
            raise
    finally:
        write_report(Path(options.report), clock, exit_code)
        clock.close()


def write_report(directory: Path, clock: StepClock, exit_code: int) -> None:
    launched_at = float(os.environ.get(LAUNCHED_AT_ENV, "0")) or None
    first = clock.first_step_wall_time
    report = {
        "rank": int(os.environ.get("RANK", "0")),
        "exit_code": exit_code,
        "steps": clock.steps,
        "step_seconds": clock.step_seconds(),
        "step_cpu_seconds": clock.step_cpu_seconds(),
        "startup_seconds": None if launched_at is None or first is None else round(first - launched_at, 3),
        "threads": torch.get_num_threads(),
        **peak_memory_mb(),
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"rank-{report['rank']}.json").write_text(json.dumps(report))


def open_clip_compat() -> None:
    """Two fixes that let open_clip_train 3.3 run here, neither of which changes what it computes:

    - it wraps the model as DDP(model, device_ids=[device]) also on CPU, which torch 2.14 rejects for CPU modules;
      DDP expects no device_ids there.
    - webdataset 1.0 ends every shard with an empty end-of-shard marker that open_clip's `group_by_keys_nothrow`
      does not expect (KeyError: 'fname' after the first shard); the markers are dropped before it.
    """
    import open_clip_train.data as open_clip_data

    original_ddp = torch.nn.parallel.DistributedDataParallel

    class CpuDeviceIdsDDP(original_ddp):
        def __init__(self, module, device_ids=None, *args, **kwargs):
            if device_ids and all(not isinstance(d, int) and torch.device(d).type == "cpu" for d in device_ids):
                device_ids = None
            super().__init__(module, device_ids, *args, **kwargs)

    torch.nn.parallel.DistributedDataParallel = CpuDeviceIdsDDP

    group_by_keys = open_clip_data.group_by_keys_nothrow

    def group_without_end_markers(files, *args, **kwargs):
        return group_by_keys((file for file in files if file), *args, **kwargs)

    open_clip_data.group_by_keys_nothrow = group_without_end_markers


if __name__ == "__main__":
    main()
