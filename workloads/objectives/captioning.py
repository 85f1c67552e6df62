"""CoCa's captioning loss: next-token cross-entropy of the multimodal decoder, averaged over the real (non-padding)
caption tokens of this process (the model hands over only those positions)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class CaptionLoss(torch.nn.Module):
    def forward(self, caption_logits: torch.Tensor, caption_labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return F.cross_entropy(caption_logits.float(), caption_labels, reduction=reduction)
