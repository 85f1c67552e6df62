"""Image↔text retrieval recall@k as CLIP_benchmark computes it (`clip_benchmark.metrics.zeroshot_retrieval`).

Every caption is its own text and belongs to exactly one image; an image may have several (COCO and Flickr
have five). `image_retrieval_recall@k`: each text queries the images and scores 1 when its own image is in
its top k, averaged over texts. `text_retrieval_recall@k`: each image queries the texts and scores 1 when
any of its captions is in its top k, averaged over images. Identical captions of different images are
different texts, each right only for its own image. k beyond the number of candidates is capped (where
CLIP_benchmark fails).
"""

from __future__ import annotations

import torch

KS = (1, 5, 10)


def retrieval_metrics(image_features: torch.Tensor, text_features: torch.Tensor, text_to_image: torch.Tensor, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """`image_features` (N×D) and `text_features` (M×D) normalised; `text_to_image[t]` is the image text t belongs to."""
    # Texts × images, the orientation CLIP_benchmark scores in, so that ties fall the same way in topk.
    scores = text_features @ image_features.T
    image_of_text = text_to_image.long()
    metrics = {}
    for k in ks:
        top_images = scores.topk(min(k, scores.shape[1]), dim=1).indices  # M × k
        found_image = (top_images == image_of_text[:, None]).any(dim=1)
        top_texts = scores.T.topk(min(k, scores.shape[0]), dim=1).indices  # N × k
        found_text = (image_of_text[top_texts] == torch.arange(scores.shape[1])[:, None]).any(dim=1)
        metrics[f"image_retrieval_recall@{k}"] = found_image.float().mean().item()
        metrics[f"text_retrieval_recall@{k}"] = found_text.float().mean().item()
    return metrics
