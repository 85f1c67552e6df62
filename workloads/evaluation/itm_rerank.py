"""Retrieval re-ranked by image-text matching: the dual encoder proposes, the fusion encoder's ITM head decides.

The unimodal embeddings rank every candidate (as in `retrieval.retrieval_metrics`); the top `top_k` of each query
are scored again by `itm_logits(images, texts)` on their row-aligned pairs and reordered by that logit (ties keep
the dual order); candidates below the top k keep their dual rank, so recall@r with r >= k cannot change. This is
ALBEF's and BLIP's retrieval protocol. Recall follows CLIP_benchmark's rule: each caption is right only for its
own image; an image query hits when any of its captions is within the top r. Both rankings come from one top-k
of the dual scores, so tied scores break the same way before and after.

Metrics (task `itm_rerank`): `image_retrieval_recall@r` (text→image) and `text_retrieval_recall@r` (image→text)
after re-ranking, the same under `before/` for the dual ranking, and `top_k`.
"""

from __future__ import annotations

from typing import Callable

import torch


TASK = "itm_rerank"
KS = (1, 5)
# (image rows [P], text ids [P]) -> [P] match logits of those pairs
PairScorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def itm_scorer(itm_logits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], pixels: torch.Tensor, tokens: torch.Tensor, batch_size: int) -> PairScorer:
    """Pairs scored in batches: `pixels` [N, 3, H, W] of the images, `tokens` [U, L] of the distinct texts."""

    @torch.no_grad()
    def score(image_rows: torch.Tensor, text_ids: torch.Tensor) -> torch.Tensor:
        chunks = [
            itm_logits(pixels[image_rows[start : start + batch_size]], tokens[text_ids[start : start + batch_size]].to(pixels.device)).float().cpu()
            for start in range(0, len(image_rows), batch_size)
        ]
        return torch.cat(chunks) if chunks else torch.empty(0)

    return score


def rerank_metrics(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    text_to_image: torch.Tensor,
    score_pairs: PairScorer,
    top_k: int,
    text_ids: torch.Tensor | None = None,
    ks: tuple[int, ...] = KS,
) -> dict[str, float]:
    """Recall@k before and after re-ranking each query's top `top_k`. `text_ids[t]` names text t's distinct string
    (identical captions are scored once per image); default: every text is its own."""
    text_ids = torch.arange(len(text_features)) if text_ids is None else text_ids.long()
    image_of_text = text_to_image.long()
    scores = text_features @ image_features.T  # texts × images, as retrieval_metrics scores
    scored = _PairCache(score_pairs, text_ids)

    depth = max(top_k, *ks)
    # text → image: each text re-ranks its top images; image → text: each image re-ranks its top texts
    images_by_text = _reranked(scores, top_k, depth, lambda top: scored(top, torch.arange(len(top))[:, None].expand_as(top)))
    texts_by_image = _reranked(scores.T, top_k, depth, lambda top: scored(torch.arange(len(top))[:, None].expand_as(top), top))

    metrics = {}
    for stage, position in (("before/", 0), ("", 1)):
        for k in ks:
            found_image = (images_by_text[position][:, :k] == image_of_text[:, None]).any(dim=1)
            found_text = (image_of_text[texts_by_image[position][:, :k]] == torch.arange(len(image_features))[:, None]).any(dim=1)
            metrics[f"{stage}image_retrieval_recall@{k}"] = found_image.float().mean().item()
            metrics[f"{stage}text_retrieval_recall@{k}"] = found_text.float().mean().item()
    metrics["top_k"] = float(top_k)
    return metrics


def _reranked(scores: torch.Tensor, top_k: int, depth: int, match_logits: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries × candidates `scores` -> each query's best `depth` candidates as ranked by the scores, and with the
    first `top_k` reordered by `match_logits` (queries × k candidate indices -> queries × k logits)."""
    depth = min(depth, scores.shape[1])
    ranked = scores.topk(depth, dim=1).indices
    k = min(top_k, depth)
    head = ranked[:, :k]
    order = match_logits(head).argsort(dim=1, descending=True, stable=True)
    return ranked, torch.cat([head.gather(1, order), ranked[:, k:]], dim=1)


class _PairCache:
    """Scores each distinct (image, text string) pair once, however many queries (in either direction) propose it."""

    def __init__(self, score_pairs: PairScorer, text_ids: torch.Tensor):
        self.score_pairs = score_pairs
        self.text_ids = text_ids
        self.width = int(text_ids.max()) + 1 if len(text_ids) else 1
        self.known: dict[int, float] = {}

    def __call__(self, image_rows: torch.Tensor, text_rows: torch.Tensor) -> torch.Tensor:
        keys, inverse = torch.unique(image_rows * self.width + self.text_ids[text_rows], return_inverse=True)
        missing = torch.tensor([key for key in keys.tolist() if key not in self.known], dtype=torch.long)
        if len(missing):
            self.known.update(zip(missing.tolist(), self.score_pairs(missing // self.width, missing % self.width).tolist()))
        return torch.tensor([self.known[key] for key in keys.tolist()])[inverse]
