"""The modality gap (Liang et al., 2022): how far apart the image and text embeddings sit on the sphere,
measured as the distance between the centroids of the L2-normalised image and text embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def modality_gap(image_features: torch.Tensor, text_features: torch.Tensor) -> dict[str, float]:
    """`gap` = ‖mean(x̂) − mean(ŷ)‖; also the centroid norms and the mean cosine of matched pairs when rows pair up."""
    images, texts = F.normalize(image_features.double(), dim=-1), F.normalize(text_features.double(), dim=-1)
    image_centroid, text_centroid = images.mean(dim=0), texts.mean(dim=0)
    metrics = {
        "gap": (image_centroid - text_centroid).norm().item(),
        "image_centroid_norm": image_centroid.norm().item(),
        "text_centroid_norm": text_centroid.norm().item(),
    }
    if images.shape == texts.shape:
        metrics["mean_pair_cosine"] = (images * texts).sum(dim=-1).mean().item()
    return metrics
