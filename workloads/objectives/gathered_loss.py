"""The common ground of the contrastive losses: which rows a process scores (`local_loss`), whether the gathered
features carry gradients (`gather_with_grad`), and the pair similarity (`score`)."""

from __future__ import annotations

from typing import Callable

import torch


def dot_score(image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    return image_features @ text_features.T


class GatheredContrastiveLoss(torch.nn.Module):
    def __init__(self, local_loss: bool = True, gather_with_grad: bool = True, score: Callable = dot_score):
        super().__init__()
        if local_loss and not gather_with_grad:
            raise ValueError("local_loss needs gather_with_grad")
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad
        self.score = score
