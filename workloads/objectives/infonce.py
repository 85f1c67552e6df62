"""Symmetric InfoNCE (CLIP's loss) with features gathered across processes.

Per pair i of the global batch of N pairs: l_i = (CE(image_i -> texts, i) + CE(text_i -> images, i)) / 2, and the loss
is the mean of w_i * l_i (w_i = 1 unless a noise harmonizer weighs the pairs). Which rows a process computes:

- `local_loss=True` (needs gather_with_grad): only its own b rows, against all N gathered columns. DDP averages the
  per-process means, and the gather's backward adds the other processes' gradients, so the update equals a
  single-process run on the whole batch, at 1/world of the logits memory (open_clip's `local_loss`).
- `local_loss=False`: the full N x N matrix on every process. With `gather_with_grad=False` the gathered copies are
  constants and the local slot's gradient is rescaled by the world size (see gather.py).

`score(image_repr, text_features) -> [n, m]` is the pair similarity: a dot product of normalised embeddings, or
PACL's text-conditioned patch pooling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlp.workloads.objectives.gather import gather, world
from vlp.workloads.objectives.gathered_loss import GatheredContrastiveLoss


class InfoNCELoss(GatheredContrastiveLoss):
    def forward(self, image_repr, text_features, logit_scale, logit_bias=None, weigh=None) -> torch.Tensor:
        """`weigh(pair_losses, local) -> weights`: optional per-pair weights from the detached pair losses."""
        rank, _ = world()
        all_images = gather(image_repr, self.gather_with_grad)
        all_texts = gather(text_features, self.gather_with_grad)
        if self.local_loss:
            logits_per_image = logit_scale * self.score(image_repr, all_texts)
            logits_per_text = logit_scale * self.score(all_images, text_features).T
            labels = torch.arange(image_repr.shape[0], device=image_repr.device) + rank * image_repr.shape[0]
        else:
            logits_per_image = logit_scale * self.score(all_images, all_texts)
            logits_per_text = logits_per_image.T
            labels = torch.arange(logits_per_image.shape[0], device=image_repr.device)
        pair_losses = (
            F.cross_entropy(logits_per_image, labels, reduction="none") + F.cross_entropy(logits_per_text, labels, reduction="none")
        ) / 2
        if weigh is not None:
            pair_losses = pair_losses * weigh(pair_losses.detach(), self.local_loss)
        return pair_losses.mean()
