"""Masked video reconstruction (VideoMAE, InternVideo's MAE branch): mean squared error between the decoder's
predictions and the masked patches' pixels, each patch normalised by its own mean and variance (MAE's
`norm_pix_loss`, which VideoMAE keeps: the target is local contrast, not absolute colour)."""

from __future__ import annotations

import torch

# MAE's epsilon under the per-patch standard deviation.
PATCH_NORM_EPS = 1e-6


def normalised_patches(pixels: torch.Tensor) -> torch.Tensor:
    """Each patch (last dimension) minus its mean, over its standard deviation (unbiased, as MAE computes it)."""
    mean = pixels.mean(dim=-1, keepdim=True)
    variance = pixels.var(dim=-1, keepdim=True)
    return (pixels - mean) / (variance + PATCH_NORM_EPS).sqrt()


class MaskedVideoLoss(torch.nn.Module):
    def forward(self, prediction: torch.Tensor, target_pixels: torch.Tensor) -> torch.Tensor:
        """prediction, target_pixels: [..., patch_pixels] for the masked patches only."""
        target = normalised_patches(target_pixels.detach().float())
        return (prediction.float() - target).pow(2).mean()
