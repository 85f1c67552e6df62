"""All-gather of per-process features for contrastive losses, with or without a gradient path.

`with_grad=True` goes through torch.distributed.nn.all_gather, whose backward sums every process's gradient for a
slice into the process that owns it. `with_grad=False` gathers constants and puts the local tensor (with its
graph) back into its own slot, as open_clip does; the loss must then be the full-batch loss, computed the same on
every process, and the local slot's gradient is multiplied by the world size: each process differentiates the full
loss only through its own features, and DDP divides by the world size when it averages, so without the factor the
feature gradients would be 1/world of a single-process run (parameters used by every process, such as the logit
scale, already get their full gradient and are not scaled).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn as differentiable


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
        return _ContiguousGradient.apply(torch.cat(differentiable.all_gather(features), dim=0))
    parts = [torch.empty_like(features) for _ in range(size)]
    dist.all_gather(parts, features.detach().contiguous())
    parts[rank] = _ScaleGradient.apply(features, float(size))
    return torch.cat(parts, dim=0)


def gather_values(values: torch.Tensor) -> torch.Tensor:
    """All processes' values as constants (for statistics that every process must agree on)."""
    return gather(values.detach(), with_grad=False)


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; gradient times `factor` backward."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.factor, None


class _ContiguousGradient(torch.autograd.Function):
    """Identity forward; the gradient made contiguous backward. torch.distributed.nn.all_gather's backward on gloo
    scatters into `empty_like(grad)`, which keeps a non-contiguous gradient's strides (an einsum's, for instance),
    and the scattered values land in the wrong places."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad.contiguous()
