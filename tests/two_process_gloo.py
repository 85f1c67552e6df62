"""Run a function on two CPU processes joined by a gloo process group (torch.multiprocessing spawn), and collect
what each rank returns. Workers live in importable modules so spawn can find them."""

from __future__ import annotations

from vlp.benchmarks.sharded_memory import run_on_processes

WORLD_SIZE = 2


def run_on_two_processes(worker, *args) -> list:
    """`worker(rank, *args)` on each of two processes; returns the rank-ordered results (torch.save-able)."""
    return run_on_processes(WORLD_SIZE, worker, *args)
