"""Run a function on two CPU processes joined by a gloo process group (torch.multiprocessing spawn), and collect
what each rank returns. Workers live in importable modules so spawn can find them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
import torch.multiprocessing as mp

WORLD_SIZE = 2


def run_on_two_processes(worker, *args) -> list:
    """`worker(rank, *args)` on each of two processes; returns the rank-ordered results (torch.save-able)."""
    with tempfile.TemporaryDirectory() as scratch:
        mp.spawn(_entry, args=(scratch, worker, args), nprocs=WORLD_SIZE, join=True)
        return [torch.load(Path(scratch) / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD_SIZE)]


def _entry(rank: int, scratch: str, worker, args) -> None:
    import torch.distributed as dist

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE), LOCAL_WORLD_SIZE=str(WORLD_SIZE), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{scratch}/rendezvous", rank=rank, world_size=WORLD_SIZE)
    try:
        result = worker(rank, *args)
        torch.save(result, Path(scratch) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
