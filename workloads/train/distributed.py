"""The process group as torchrun sets it up (RANK, WORLD_SIZE, LOCAL_WORLD_SIZE in the environment)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(threads_per_proc: int | None = None) -> DistContext:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device, backend = torch.device("cuda", local_rank), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
        default_threads = int(os.environ.get("VLP_THREADS_PER_PROC", "0")) or max(1, (os.cpu_count() or 1) // local_world_size)
        torch.set_num_threads(threads_per_proc or default_threads)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    return DistContext(rank=rank, world_size=world_size, local_world_size=local_world_size, device=device)


def agree_any(flag: bool, device: torch.device) -> bool:
    """True on every rank if it is true on any rank (so all ranks stop at the same step)."""
    if not dist.is_initialized():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gather_objects(value: object) -> list[object]:
    """Every rank's `value`, in rank order, on every rank (for small state such as RNG and data positions)."""
    if not dist.is_initialized():
        return [value]
    values: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def sum_across_ranks(value: float, device: torch.device) -> float:
    if not dist.is_initialized():
        return value
    total = torch.tensor([float(value)], device=device)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return float(total.item())


def close_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
