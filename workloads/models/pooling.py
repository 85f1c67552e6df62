"""`model.pooling`: how an image tower turns its tokens into one vector (cls | mean | ggem).

`TokenPooling` works on a ViT's token sequence (class token first, then the patch tokens). A ResNet tower has no
class token: `cls` keeps its attention pool, while `mean` and `ggem` replace the attention pool with
`SpatialPoolingHead` (pool the final feature map's positions, then a linear projection to the embedding).
"""

from __future__ import annotations

from typing import Literal

import torch

from vlp.workloads.models.ggem import GGeM

PoolingKind = Literal["cls", "mean", "ggem"]


def make_ggem(channels: int, heads: int, options: dict) -> GGeM:
    groups = options.get("groups") or heads
    return GGeM(channels, groups, options.get("init_p", 3.0), options.get("eps", 1e-6))


class TokenPooling(torch.nn.Module):
    """[B, 1 + P, C] (class token first) -> [B, C]."""

    def __init__(self, kind: PoolingKind, channels: int, heads: int, ggem_options: dict | None = None):
        super().__init__()
        self.kind = kind
        self.ggem = make_ggem(channels, heads, ggem_options or {}) if kind == "ggem" else None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.kind == "cls":
            return tokens[:, 0]
        if self.kind == "mean":
            return tokens[:, 1:].mean(dim=1)
        return self.ggem(tokens[:, 1:])


class SpatialPoolingHead(torch.nn.Module):
    """Replaces open_clip's ResNet attention pool: [B, C, H, W] -> pool over H*W -> linear -> [B, output_dim]."""

    def __init__(self, kind: PoolingKind, channels: int, output_dim: int, heads: int, ggem_options: dict | None = None):
        super().__init__()
        if kind == "cls":
            raise ValueError("a ResNet tower's `cls` pooling is its own attention pool")
        self.ggem = make_ggem(channels, heads, ggem_options or {}) if kind == "ggem" else None
        self.proj = torch.nn.Linear(channels, output_dim)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        tokens = feature_map.flatten(2).transpose(1, 2)
        pooled = tokens.mean(dim=1) if self.ggem is None else self.ggem(tokens)
        return self.proj(pooled)
