"""Masked image modeling: regress the pixels of the masked patches (MAE's loss with `norm_pix_loss`).

`patchify` and `normalized_pixels` are MAE's (`models_mae.py`): a patch is its p x p x 3 pixels in (row, column,
channel) order, and with `norm_pix_loss` each patch's target is its pixels minus their mean over the patch,
divided by sqrt(unbiased variance + 1e-6). The loss is the mean squared error per patch, averaged over the masked
patches of every process (see token_average.py). The model hands over the masked patches' predictions and pixels
(`*_predictions`, `*_patches`, both [K, p*p*3])."""

from __future__ import annotations

import torch

from vlp.workloads.objectives.token_average import global_mean


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[B, 3, H, W] -> [B, (H/p)*(W/p), p*p*3], patches row-major over the grid (MAE's `patchify`)."""
    batch, channels, height, width = images.shape
    rows, columns = height // patch_size, width // patch_size
    x = images.reshape(batch, channels, rows, patch_size, columns, patch_size)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(batch, rows * columns, patch_size * patch_size * channels)


def normalized_pixels(patches: torch.Tensor) -> torch.Tensor:
    """Each patch's pixels standardised over the patch (MAE's `norm_pix_loss` target)."""
    mean = patches.mean(dim=-1, keepdim=True)
    variance = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (variance + 1.0e-6) ** 0.5


class MaskedImageModelingLoss(torch.nn.Module):
    def __init__(self, norm_pix_loss: bool = True):
        super().__init__()
        self.norm_pix_loss = norm_pix_loss

    def forward(self, predictions: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        target = normalized_pixels(patches.float()) if self.norm_pix_loss else patches.float()
        return global_mean(((predictions.float() - target) ** 2).mean(dim=-1))
