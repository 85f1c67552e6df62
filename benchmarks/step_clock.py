"""Time the optimizer steps of any training loop in this process, the same way for every trainer.

torch calls a global hook after every `optimizer.step()`, whoever wrote the loop: vlp's trainer and
open_clip_train are measured by the same clock without touching either. On CUDA each step records an event
on the stream (no synchronization, so the measurement does not slow the loop down); the times are read when
the run is over.

Each step also records the CPU time used so far by this process and its live children (DataLoader workers).
CPU time barely changes when other programs compete for the cores, where wall time does: samples per
CPU-second compares two trainers fairly on a busy machine.
"""

from __future__ import annotations

import os
import resource
import time

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook


class StepClock:
    def __init__(self, device_type: str = "cpu"):
        self.cuda = device_type == "cuda" and torch.cuda.is_available()
        self.started = time.perf_counter()
        self.first_step_wall_time: float | None = None
        self._stamps: list[float] = []
        self._cpu: list[float] = []
        self._events: list = []
        if self.cuda:
            self._origin = torch.cuda.Event(enable_timing=True)
            self._origin.record()
        self._handle = register_optimizer_step_post_hook(self._on_step)

    def _on_step(self, optimizer, args, kwargs) -> None:
        if self.first_step_wall_time is None:
            self.first_step_wall_time = time.time()
        self._cpu.append(tree_cpu_seconds())
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._events.append(event)
        else:
            self._stamps.append(time.perf_counter() - self.started)

    @property
    def steps(self) -> int:
        return len(self._events) if self.cuda else len(self._stamps)

    def step_seconds(self) -> list[float]:
        """When each step finished, in seconds since the clock started."""
        if not self.cuda:
            return list(self._stamps)
        torch.cuda.synchronize()
        return [self._origin.elapsed_time(event) / 1000.0 for event in self._events]

    def step_cpu_seconds(self) -> list[float]:
        """CPU seconds used by this process and its children when each step finished."""
        return list(self._cpu)

    def close(self) -> None:
        self._handle.remove()


def peak_memory_mb() -> dict[str, float | None]:
    """Peak resident memory of this process and of its finished children (DataLoader workers), and on CUDA
    the peak of tensor memory torch allocated."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return {"rss_mb": round(own, 1), "children_rss_mb": round(children, 1), "cuda_allocated_mb": None if cuda is None else round(cuda, 1)}


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds() -> float:
    """CPU time of this process (all threads) and of every live descendant, read from /proc."""
    return time.process_time() + sum(_process_cpu_seconds(pid) for pid in _descendants(os.getpid()))


def _descendants(pid: int) -> list[int]:
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as listing:
                children = [int(child) for child in listing.read().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *_descendants(child)]
    return found


def _process_cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:  # exited meanwhile
        return 0.0
    # utime and stime are fields 14 and 15 of the line, 12 and 13 after "pid (comm)".
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
