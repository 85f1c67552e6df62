"""Per-process training state under DDP and FSDP, measured, and the largest model each fits in a memory budget.

For each parallelism and process count, `--procs` gloo processes build the preset, wrap or shard it
(`vlp.workloads.train.parallelism.parallelize`), build vlp's AdamW and let it create its state (one step on zero
gradients, so no forward pass is needed at any image size), then report the bytes they hold for parameters,
gradients and optimizer state (`state_bytes`; FSDP's local shards) and their peak RSS. Bytes per parameter at the
largest process count give an estimate of the largest model whose training state fits in the budget (activations,
which depend on batch and image size, are not included: the estimate is an upper bound). Models are open_clip
configs, counted on the meta device.
"""

from __future__ import annotations

import os
import resource
import tempfile
from pathlib import Path

import torch

from vlp.benchmarks.report import BenchReport, Column

CANDIDATES = ("ViT-B-32", "ViT-B-16", "ViT-L-14", "ViT-H-14", "ViT-g-14", "ViT-bigG-14")
GIB = 1024**3


def run_on_processes(processes: int, worker, *args) -> list:
    """`worker(rank, *args)` on each of `processes` CPU processes joined by a gloo group; rank-ordered results."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as scratch:
        mp.spawn(_entry, args=(processes, scratch, worker, args), nprocs=processes, join=True)
        return [torch.load(Path(scratch) / f"rank{rank}.pt", weights_only=False) for rank in range(processes)]


def _entry(rank: int, processes: int, scratch: str, worker, args) -> None:
    import torch.distributed as dist

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(processes), LOCAL_WORLD_SIZE=str(processes), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    if processes > 1:
        dist.init_process_group("gloo", init_method=f"file://{scratch}/rendezvous", rank=rank, world_size=processes)
    try:
        torch.save(worker(rank, *args), Path(scratch) / f"rank{rank}.pt")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def held_state(rank: int, preset: str, parallelism: str, processes: int) -> dict:
    """Bytes this process holds for the preset's training state under `parallelism`."""
    from vlp.platform.spec.model import ModelSection
    from vlp.workloads.models.factory import build_model
    from vlp.workloads.train.optim import build_optimizer
    from vlp.workloads.train.parallelism import local_tensor, parallelize, state_bytes

    torch.manual_seed(0)
    model = build_model(ModelSection(preset=preset)).model
    parallelize(model, parallelism, processes, "fp32")
    optimizer = build_optimizer(model, 1e-3, 0.1)
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    held = state_bytes(model, optimizer)
    held["gradients"] = sum(local_tensor(p.grad).numel() * p.grad.element_size() for p in model.parameters())
    held["parameter_count"] = sum(local_tensor(p).numel() for p in model.parameters()) if parallelism == "ddp" else None
    held["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return held


def parameter_count(name: str) -> int:
    from vlp.workloads.models.catalog import load_model_cfg
    from vlp.workloads.models.factory import build_model_from_cfg

    with torch.device("meta"):
        return sum(p.numel() for p in build_model_from_cfg(load_model_cfg(name)).model.parameters())


def run_sharded_memory(preset: str, process_counts: list[int], budget_gib: float) -> BenchReport:
    total_parameters = parameter_count(preset)
    report = BenchReport(
        name="memory",
        title=f"Training state per process: DDP vs FSDP ({preset}, {total_parameters / 1e6:.0f}M parameters, fp32 AdamW)",
        settings={"preset": preset, "processes": process_counts, "budget_gib": budget_gib, "parameters": total_parameters},
        columns=[
            Column("parallelism", "parallelism"),
            Column("processes", "processes"),
            Column("parameters_mb", "parameters MB/proc", "{:.0f}"),
            Column("gradients_mb", "gradients MB/proc", "{:.0f}"),
            Column("optimizer_mb", "optimizer MB/proc", "{:.0f}"),
            Column("bytes_per_parameter", "state bytes/param/proc", "{:.2f}"),
            Column("peak_rss_mb", "peak RSS MB/proc", "{:.0f}"),
        ],
    )
    for parallelism in ("ddp", "fsdp"):
        for processes in process_counts:
            per_rank = run_on_processes(processes, held_state, preset, parallelism, processes)
            # The busiest process sets what fits (shards are padded; scalars stay whole on every process).
            worst = max(per_rank, key=lambda held: held["parameters"] + held["gradients"] + held["optimizer"])
            state = worst["parameters"] + worst["gradients"] + worst["optimizer"]
            report.rows.append({
                "parallelism": parallelism, "processes": processes,
                "parameters_mb": worst["parameters"] / 2**20, "gradients_mb": worst["gradients"] / 2**20,
                "optimizer_mb": worst["optimizer"] / 2**20, "bytes_per_parameter": state / total_parameters,
                "peak_rss_mb": max(held["peak_rss_mb"] for held in per_rank),
            })
    largest = max(process_counts)
    sizes = {name: parameter_count(name) for name in CANDIDATES}
    for row in report.rows:
        if row["processes"] != largest:
            continue
        fits = budget_gib * GIB / row["bytes_per_parameter"]
        fitting = [name for name, count in sizes.items() if count <= fits]
        report.summary[f"{row['parallelism']}_largest_parameters_in_budget"] = fits
        report.summary[f"{row['parallelism']}_largest_open_clip_config_in_budget"] = max(fitting, key=sizes.get) if fitting else None
    report.summary["open_clip_parameters"] = sizes
    report.notes = [
        f"the largest model is an estimate: {budget_gib:g} GiB / measured state bytes per parameter per process at "
        f"{largest} processes (parameters + gradients + AdamW state); activations, loader buffers and the framework's own "
        "memory come on top, so the real limit is lower",
        "peak RSS includes building the whole model on every process before FSDP shards it (the full weights exist "
        "briefly); building on the meta device and loading shards would remove that peak",
    ]
    return report.finish()
