"""Image↔text retrieval recall@k. A query counts as a hit if any of its true matches is in the top k, so
identical captions of different images are all correct answers."""

from __future__ import annotations

import torch

KS = (1, 5, 10)


def retrieval_metrics(image_features: torch.Tensor, text_features: torch.Tensor, image_to_text: torch.Tensor) -> dict[str, float]:
    """`image_features` (N×D) and `text_features` (M×D) normalised; `image_to_text[i]` is the index of image i's text.

    Returns CLIP_benchmark's names: `image_retrieval_recall@k` (text query → images) and
    `text_retrieval_recall@k` (image query → texts).
    """
    similarity = image_features @ text_features.T  # N × M
    positives = torch.zeros_like(similarity, dtype=torch.bool)
    positives[torch.arange(similarity.shape[0]), image_to_text] = True
    metrics = {}
    for k in KS:
        top_texts = similarity.topk(min(k, similarity.shape[1]), dim=1).indices
        metrics[f"text_retrieval_recall@{k}"] = positives.gather(1, top_texts).any(dim=1).float().mean().item()
        top_images = similarity.T.topk(min(k, similarity.shape[0]), dim=1).indices
        metrics[f"image_retrieval_recall@{k}"] = positives.T.gather(1, top_images).any(dim=1).float().mean().item()
    return metrics
