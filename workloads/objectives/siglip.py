"""SigLIP's pairwise sigmoid loss (Zhai et al., "Sigmoid Loss for Language Image Pre-Training").

Every (image i, text j) of the global batch is a binary problem: z_ij = scale * cos(i, j) + bias, label +1 on the
diagonal and -1 elsewhere, loss_ij = -log sigmoid(label_ij * z_ij). The loss is sum_ij loss_ij / N. With
`local_loss` a process computes its own image rows against all gathered texts and divides by its b rows; DDP's
average over processes then gives sum_ij loss_ij / N again (open_clip normalises the same way). A noise harmonizer
weighs only the positive (diagonal) terms, where a mismatched caption does its damage.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlp.workloads.objectives.gather import gather, world
from vlp.workloads.objectives.gathered_loss import GatheredContrastiveLoss


class SigLipLoss(GatheredContrastiveLoss):
    def forward(self, image_repr, text_features, logit_scale, logit_bias=None, weigh=None) -> torch.Tensor:
        rank, _ = world()
        all_texts = gather(text_features, self.gather_with_grad)
        if self.local_loss:
            rows, offset = image_repr, rank * image_repr.shape[0]
        else:
            rows, offset = gather(image_repr, self.gather_with_grad), 0
        logits = logit_scale * self.score(rows, all_texts)
        if logit_bias is not None:
            logits = logits + logit_bias
        count = logits.shape[0]
        row_index = torch.arange(count, device=logits.device)
        positive = torch.zeros_like(logits, dtype=torch.bool)
        positive[row_index, row_index + offset] = True
        pair_terms = -F.logsigmoid(torch.where(positive, logits, -logits))
        if weigh is not None:
            weights = weigh(pair_terms[row_index, row_index + offset].detach(), self.local_loss)
            pair_terms = torch.where(positive, pair_terms * weights[:, None], pair_terms)
        return pair_terms.sum() / count
