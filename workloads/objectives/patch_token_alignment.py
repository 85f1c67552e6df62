"""Fine-grained patch-token alignment: FILIP's token-wise late interaction (Yao et al., "FILIP: Fine-grained
Interactive Language-Image Pre-Training"), the patch-token alignment that SimLA adds beside its global loss.

With L2-normalised patch embeddings v_p of image i and token embeddings w_t of caption j (content tokens only:
no start, end or padding token),

    s_i2t(i, j) = mean_p max_t <v_p, w_t>        (each patch finds its best word)
    s_t2i(i, j) = mean_t max_p <v_p, w_t>        (each word finds its best patch)

and the loss is the symmetric InfoNCE with logits scale * s_i2t for image rows and scale * s_t2i for text rows.
The two directions use different similarities, which is why this is its own loss instead of `InfoNCELoss` with a
score; the gathering across processes is the same (`local_loss`, `gather_with_grad`, gather.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlp.workloads.objectives.gather import gather, gather_values, world
from vlp.workloads.objectives.gathered_loss import GatheredContrastiveLoss


def _token_similarities(patches: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """[n, P, E] x [m, L, E] -> [n, m, P, L]."""
    return torch.einsum("npe,mle->nmpl", patches, tokens)


def image_to_text(patches: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """[n, m]: mean over patches of the best content token's similarity."""
    similarity = _token_similarities(patches, tokens).masked_fill(~token_mask[None, :, None, :], float("-inf"))
    best = similarity.max(dim=-1).values
    # A caption without content tokens matches nothing (0 instead of -inf).
    return torch.where(torch.isinf(best), torch.zeros_like(best), best).mean(dim=-1)


def text_to_image(patches: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """[n, m]: mean over the content tokens of caption j of their best patch's similarity in image i."""
    best = _token_similarities(patches, tokens).max(dim=2).values
    weights = token_mask.to(best.dtype)[None]
    return (best * weights).sum(dim=-1) / weights.sum(dim=-1).clamp(min=1)


class PatchTokenAlignmentLoss(GatheredContrastiveLoss):
    def forward(self, patches: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
        rank, _ = world()
        all_patches = gather(patches, self.gather_with_grad)
        all_tokens = gather(tokens, self.gather_with_grad)
        all_mask = gather_values(token_mask.long()).bool()
        if self.local_loss:
            logits_per_image = logit_scale * image_to_text(patches, all_tokens, all_mask)
            logits_per_text = logit_scale * text_to_image(all_patches, tokens, token_mask).T
            labels = torch.arange(patches.shape[0], device=patches.device) + rank * patches.shape[0]
        else:
            logits_per_image = logit_scale * image_to_text(all_patches, all_tokens, all_mask)
            logits_per_text = logit_scale * text_to_image(all_patches, all_tokens, all_mask).T
            labels = torch.arange(all_patches.shape[0], device=patches.device)
        return (F.cross_entropy(logits_per_image.float(), labels) + F.cross_entropy(logits_per_text.float(), labels)) / 2
