"""Time the optimizer steps of any training loop in this process, the same way for every trainer.

torch calls a global hook after every `optimizer.step()`, whoever wrote the loop: vlp's trainer and
open_clip_train are measured by the same clock without touching either. On CUDA each step records an event
on the stream (no synchronization, so the measurement does not slow the loop down); the times are read when
the run is over.
"""

from __future__ import annotations

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
        self._events: list = []
        if self.cuda:
            self._origin = torch.cuda.Event(enable_timing=True)
            self._origin.record()
        self._handle = register_optimizer_step_post_hook(self._on_step)

    def _on_step(self, optimizer, args, kwargs) -> None:
        if self.first_step_wall_time is None:
            self.first_step_wall_time = time.time()
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

    def close(self) -> None:
        self._handle.remove()


def peak_memory_mb() -> dict[str, float | None]:
    """Peak resident memory of this process and of its finished children (DataLoader workers), and on CUDA
    the peak of tensor memory torch allocated."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return {"rss_mb": round(own, 1), "children_rss_mb": round(children, 1), "cuda_allocated_mb": None if cuda is None else round(cuda, 1)}
