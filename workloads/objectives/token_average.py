"""Means over items spread unevenly across processes (masked tokens, masked patches), so that DDP's average of the
per-process losses equals the one-process mean over the whole batch."""

from __future__ import annotations

import torch

from vlp.workloads.objectives.gather import gather_values, world


def global_mean(item_losses: torch.Tensor) -> torch.Tensor:
    """sum(this process's item losses) x world / (items on all processes): DDP divides by the world size, so the
    update is that of mean(all items of all processes). 0 (with a graph) when no process has an item."""
    _, size = world()
    count = gather_values(torch.tensor([item_losses.shape[0]], device=item_losses.device)).sum().clamp(min=1)
    return item_losses.sum() * size / count
