"""Symmetric InfoNCE (CLIP's loss) with features gathered across ranks.

With `local_loss=True` each rank scores only its own rows against all gathered columns, which gives the
same gradients as the full matrix at 1/world_size of the memory (open_clip's `local_loss`). Gathering goes
through `torch.distributed.nn.all_gather`, which back-propagates into every rank's features.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def gather_features(features: torch.Tensor) -> torch.Tensor:
    """All ranks' features, concatenated in rank order, differentiable through the gather."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return features
    import torch.distributed.nn

    return torch.cat(torch.distributed.nn.all_gather(features), dim=0)


class InfoNCELoss(torch.nn.Module):
    def __init__(self, local_loss: bool = True):
        super().__init__()
        self.local_loss = local_loss

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
        all_images = gather_features(image_features)
        all_texts = gather_features(text_features)
        if self.local_loss:
            rank = dist.get_rank() if dist.is_initialized() else 0
            logits_per_image = logit_scale * image_features @ all_texts.T
            logits_per_text = logit_scale * text_features @ all_images.T
            offset = rank * image_features.shape[0]
        else:
            logits_per_image = logit_scale * all_images @ all_texts.T
            logits_per_text = logits_per_image.T
            offset = 0
        labels = torch.arange(logits_per_image.shape[0], device=image_features.device) + offset
        return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2
