"""MS-CLIP's early specialization: a small residual conv stem in place of the ViT's patch-embedding convolution.

Each stage halves the resolution (3x3 conv, stride 2, BatchNorm, ReLU) and refines with one residual block; after
log2(patch_size) stages a 1x1 convolution maps to the transformer width, so the stem yields the same token grid
as the patchify convolution it replaces (total stride = patch size).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ResidualConvBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class ConvStem(nn.Module):
    def __init__(self, width: int, patch_size: int, in_channels: int = 3, first_channels: int | None = None):
        super().__init__()
        stages = int(round(math.log2(patch_size))) if patch_size > 0 else -1
        if stages < 1 or 2**stages != patch_size:
            raise ValueError(f"the conv stem needs a power-of-two patch size >= 2 (got {patch_size})")
        channels = first_channels or max(8, width // 2**stages)
        layers: list[nn.Module] = []
        for _ in range(stages):
            layers += [
                nn.Conv2d(in_channels, channels, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
                ResidualConvBlock(channels),
            ]
            in_channels, channels = channels, min(channels * 2, width)
        layers.append(nn.Conv2d(in_channels, width, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, width, H / patch, W / patch], the shape of the patchify convolution's output."""
        return self.layers(images)
