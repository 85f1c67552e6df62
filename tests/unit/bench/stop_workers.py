"""Spawned workers for test_training_speedups (spawn needs an importable module)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
import torch.multiprocessing as mp


def run_two(worker, *args) -> list:
    with tempfile.TemporaryDirectory() as scratch:
        mp.spawn(_entry, args=(scratch, worker, args), nprocs=2, join=True)
        return [torch.load(Path(scratch) / f"rank{rank}.pt") for rank in range(2)]


def _entry(rank: int, scratch: str, worker, args) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{scratch}/rendezvous", rank=rank, world_size=2)
    try:
        torch.save(worker(rank, *args), Path(scratch) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def stop_when_rank_one_asks(rank: int, ask_at: int) -> list[bool]:
    """Rank 1 raises its flag at call `ask_at` (and keeps it up); every rank records what each call returned."""
    from vlp.workloads.train.stop_agreement import StopAgreement

    agreement = StopAgreement()
    answers = [agreement.should_stop(rank == 1 and call >= ask_at) for call in range(ask_at + 3)]
    agreement.close()
    return answers
