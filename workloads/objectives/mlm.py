"""Masked language modeling: cross-entropy of the vocabulary logits at the masked caption positions (BERT).

The model hands over only the masked positions (`*_logits` [M, V], `*_labels` [M]), since the vocabulary projection
dominates the cost; the loss is the mean over the masked tokens of every process (see token_average.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlp.workloads.objectives.token_average import global_mean


class MaskedLanguageModelingLoss(torch.nn.Module):
    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return global_mean(F.cross_entropy(logits.float(), labels, reduction="none"))
