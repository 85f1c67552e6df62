"""Image-text matching (ITM): a binary classifier on the fused [CLS] of matched and mismatched pairs.

For each of this process's pairs (image i, text i) the model fuses three pairs: the positive, (image i, a negative
text) and (a negative image, text i), as ALBEF and BLIP do. Negatives come from the whole global batch:

- `hard`: text j for image i with probability softmax_j(s_ij) over the candidates, image j for text i with
  softmax_j(s_ji), where s is the scaled contrastive similarity of the unimodal embeddings gathered from every
  process (ALBEF's `weights_i2t` / `weights_t2i`; no gradient flows through the sampling);
- `random`: uniform over the candidates (what a fusion model without a contrastive head can do).

Candidates exclude the positive and every text with the same token ids as the positive's (the shapes captions
repeat; BLIP likewise masks pairs of the same image). All processes draw the whole batch's negatives from the same
generator state and keep their own rows, so two processes pick exactly what one process picks for the whole batch.
The chosen negatives' token sequences are gathered with gradients (`gather_rows`), so the update equals a
one-process run. The loss is cross-entropy over the [3b, 2] logits with label 1 for the positives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlp.workloads.objectives.gather import gather, gather_values, world


def negative_candidates(all_texts: torch.Tensor) -> torch.Tensor:
    """[N, N] bool: may text j serve as a negative for image i (and image j for text i)? Not the pair itself, not a
    text equal to text i; a row left without candidates falls back to every j != i."""
    same = (all_texts[:, None, :] == all_texts[None, :, :]).all(dim=-1)
    allowed = ~same
    empty = ~allowed.any(dim=1)
    if bool(empty.any()):
        allowed[empty] = ~torch.eye(all_texts.shape[0], dtype=torch.bool, device=all_texts.device)[empty]
    return allowed


def sample_negatives(similarity: torch.Tensor, allowed: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Global indices (text for each image, image for each text), [N] each, for the whole global batch.

    `similarity` [N, N] (image rows, text columns; zeros for `random`), `allowed` from `negative_candidates`.
    Drawn on the CPU so the generator is the one checkpoints save."""
    if similarity.shape[0] < 2:
        raise ValueError("image-text matching needs at least 2 pairs in the global batch to draw negatives from")
    similarity, allowed = similarity.detach().float().cpu(), allowed.cpu()
    text_weights = torch.softmax(similarity, dim=1).masked_fill(~allowed, 0.0)
    image_weights = torch.softmax(similarity.T, dim=1).masked_fill(~allowed, 0.0)
    text_for_image = torch.multinomial(text_weights, 1, generator=generator).squeeze(1)
    image_for_text = torch.multinomial(image_weights, 1, generator=generator).squeeze(1)
    return text_for_image, image_for_text


def local_rows(values: torch.Tensor) -> torch.Tensor:
    """This process's rows of a tensor computed for the whole global batch."""
    rank, size = world()
    rows = values.shape[0] // size
    return values[rank * rows : (rank + 1) * rows]


def draw_negatives(
    texts: torch.Tensor,
    image_features: torch.Tensor | None = None,
    text_features: torch.Tensor | None = None,
    logit_scale: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Global indices of this process's negatives: (text for each local image, image for each local text).

    Hard negatives when the (normalised) features are given, random ones otherwise."""
    all_texts = gather_values(texts)
    if image_features is None:
        similarity = torch.zeros(all_texts.shape[0], all_texts.shape[0])
    else:
        similarity = logit_scale.detach() * gather_values(image_features) @ gather_values(text_features).T
    text_for_image, image_for_text = sample_negatives(similarity, negative_candidates(all_texts), generator)
    return local_rows(text_for_image).to(texts.device), local_rows(image_for_text).to(texts.device)


def gather_rows(values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Rows `indices` (global) of `values` gathered from every process, with gradients back to their owners."""
    return gather(values, with_grad=True)[indices]


def matching_labels(pairs: int, device) -> torch.Tensor:
    """Labels of the logits the model returns: its b positives, then its 2b negatives."""
    labels = torch.zeros(3 * pairs, dtype=torch.long, device=device)
    labels[:pairs] = 1
    return labels


class ImageTextMatchingLoss(torch.nn.Module):
    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), labels)
