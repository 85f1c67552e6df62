"""All ranks stop at the same step, without a blocking collective inside every step.

Each step every rank starts an asynchronous all-reduce (max) of its own stop flag — out of time on rank 0, a
SIGTERM on any rank — on a CPU (gloo) process group, and reads the result of the one it started the step before,
which has long completed. Every rank reads the same results in the same order, so all stop at the same step: one
step after the first rank asked. The flag never lives on a GPU, so the check never waits for the device either.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


class StopAgreement:
    def __init__(self) -> None:
        # A group of its own (created on every rank, in the same order): its collectives never queue behind DDP's.
        self.group = dist.new_group(backend="gloo") if dist.is_initialized() else None
        self._in_flight: tuple[object, torch.Tensor] | None = None

    def should_stop(self, flag: bool) -> bool:
        """Whether any rank raised its flag in the previous call (on a single process: this call's flag)."""
        if self.group is None:
            return flag
        previous = self._in_flight
        value = torch.tensor([1.0 if flag else 0.0])
        self._in_flight = (dist.all_reduce(value, op=dist.ReduceOp.MAX, group=self.group, async_op=True), value)
        if previous is None:
            return False
        work, result = previous
        work.wait()
        return bool(result.item())

    def close(self) -> None:
        """Finish the last all-reduce (every rank started it) before the process group goes away."""
        if self._in_flight is not None:
            self._in_flight[0].wait()
            self._in_flight = None
