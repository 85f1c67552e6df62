"""All-gather of per-process features for contrastive losses, with or without a gradient path.

`with_grad=True` goes through torch.distributed.nn.all_gather, whose backward sums every process's gradient for a
slice into the process that owns it. `with_grad=False` gathers constants and puts the local tensor (with its
graph) back into its own slot, as open_clip does.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather(features: torch.Tensor, with_grad: bool = True) -> torch.Tensor:
    """All processes' `features`, concatenated along dim 0 in rank order."""
    rank, size = world()
    if size == 1:
        return features
    if with_grad:
        import torch.distributed.nn

        return torch.cat(torch.distributed.nn.all_gather(features), dim=0)
    parts = [torch.empty_like(features) for _ in range(size)]
    dist.all_gather(parts, features.detach().contiguous())
    parts[rank] = features
    return torch.cat(parts, dim=0)


def gather_values(values: torch.Tensor) -> torch.Tensor:
    """All processes' values as constants (for statistics that every process must agree on)."""
    return gather(values.detach(), with_grad=False)


def scale_gradient_to_world(loss: torch.Tensor) -> torch.Tensor:
    """Same value, gradient x world size.

    Every process computes the full-batch loss L but, gathering without grad, differentiates only through its own
    slice; DDP then averages over processes, which would give dL/dtheta / world. Scaling restores dL/dtheta.
    """
    _, size = world()
    if size == 1:
        return loss
    return loss * size - loss.detach() * (size - 1)
