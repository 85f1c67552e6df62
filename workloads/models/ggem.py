"""GGeM: group generalized-mean pooling (Ko et al., "Group Generalized Mean Pooling for Vision Transformer").

The C channels are split into G equal groups (by default one per attention head, since a head's channels were
computed together); group g has a learnable exponent p_g, and for every channel c of group g

    y_c = ( (1/T) * sum_t max(x_tc, eps) ** p_g ) ** (1 / p_g)

over the T pooled tokens. p = 1 is mean pooling and p -> inf approaches max pooling. The clamp keeps the power of
a negative number from being undefined (GeM was made for post-ReLU CNN features).
"""

from __future__ import annotations

import torch


class GGeM(torch.nn.Module):
    def __init__(self, channels: int, groups: int, init_p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        if channels % groups:
            raise ValueError(f"GGeM: {channels} channels cannot be split into {groups} equal groups")
        self.groups = groups
        self.eps = eps
        self.p = torch.nn.Parameter(torch.full((groups,), float(init_p)))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """`tokens` [B, T, C] -> [B, C]."""
        channels = tokens.shape[-1]
        # A tiny floor keeps 1/p finite if an exponent ever drifts towards zero.
        p = self.p.clamp(min=1e-2).repeat_interleave(channels // self.groups)
        # Powers overflow quickly in bf16: pool in fp32 and hand back the input dtype.
        pooled = tokens.float().clamp(min=self.eps).pow(p).mean(dim=1).pow(1.0 / p)
        return pooled.to(tokens.dtype)
