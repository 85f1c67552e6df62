"""Metrics computed on the device, read on the host one log window later, so logging never stalls the step.

`tensor.item()` on a GPU waits until every kernel queued so far has run: the host stops queueing work and the
device idles while the host catches up. Here each log step starts an asynchronous copy into pinned host memory
and records an event; values are handed to the tracker once their event has completed (normally by the next log
step), and `ready(wait=True)` collects the rest (at a checkpoint, at the end). On CPU the values are ready at once.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class _Pending(NamedTuple):
    step: int
    keys: tuple[str, ...]
    values: torch.Tensor
    event: object  # torch.cuda.Event, or None on CPU
    host_values: dict[str, float]


class DeviceMetrics:
    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self._pending: list[_Pending] = []

    def push(self, step: int, device_values: dict[str, torch.Tensor], host_values: dict[str, float]) -> None:
        stacked = torch.stack([value.detach().float().reshape(()) for value in device_values.values()])
        event = None
        if self.cuda:
            host = torch.empty(stacked.shape, dtype=stacked.dtype, pin_memory=True)
            host.copy_(stacked, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            stacked = host
        self._pending.append(_Pending(step, tuple(device_values), stacked, event, dict(host_values)))

    def ready(self, wait: bool = False) -> list[tuple[int, dict[str, float]]]:
        """(step, metrics) of every push whose values have reached the host, oldest first; with `wait`, all of them."""
        done = []
        while self._pending:
            entry = self._pending[0]
            if entry.event is not None and not wait and not entry.event.query():
                break
            if entry.event is not None:
                entry.event.synchronize()
            self._pending.pop(0)
            done.append((entry.step, {**dict(zip(entry.keys, entry.values.tolist())), **entry.host_values}))
        return done
