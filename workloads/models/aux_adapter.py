"""MS-CLIP's auxiliary parallel branch: a conv network beside the image transformer, joined by lateral adapters.

The branch runs once per image: a conv stem down to the patch grid, then one residual conv block per adapted
layer. Before each chosen transformer layer, a lateral adapter (a linear map, initialised to zero so training
starts from the plain transformer) adds the branch's current features to the patch tokens (not the class token).
"""

from __future__ import annotations

import torch
from torch import nn

from vlp.workloads.models.conv_stem import ConvStem, ResidualConvBlock


class AuxConvBranch(nn.Module):
    def __init__(self, width: int, patch_size: int, layers: tuple[int, ...], channels: int):
        super().__init__()
        self.layers = tuple(sorted(set(layers)))
        self.stem = ConvStem(channels, patch_size, first_channels=max(8, channels // 2))
        self.blocks = nn.ModuleList(ResidualConvBlock(channels) for _ in self.layers)
        self.laterals = nn.ModuleList(nn.Linear(channels, width) for _ in self.layers)
        for lateral in self.laterals:
            nn.init.zeros_(lateral.weight)
            nn.init.zeros_(lateral.bias)

    def forward(self, images: torch.Tensor) -> dict[int, torch.Tensor]:
        """Layer index -> [B, P, width] to add to that layer's input patch tokens."""
        features = self.stem(images)
        additions = {}
        for layer, block, lateral in zip(self.layers, self.blocks, self.laterals):
            features = block(features)
            additions[layer] = lateral(features.flatten(2).transpose(1, 2))
        return additions
