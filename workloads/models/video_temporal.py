"""What `arch: video` adds over time: the temporal step of divided space-time attention and the temporal pooling.

Divided attention (TimeSformer, OmniVL's decoupled attention): before each spatial block of the image ViT, every
token attends to the tokens at its own spatial position in the other frames of its clip. The temporal step's
output projection and the time embedding start at zero, so an untrained video model embeds every frame exactly
as the image model does and training moves away from it (TimeSformer initialises from an image ViT the same way).

Temporal pooling of the frame embeddings: `mean` (CLIP4Clip's meanP, blind to frame order by construction) or
`transformer` (CLIP4Clip's seqTransf: frame position embeddings, a small transformer over the frames, a residual
to the frame embeddings, then the mean). As in CLIP4Clip, each frame's embedding is normalised before the mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.transformer import LayerNorm, Transformer
from torch import nn

# Head width of the temporal transformer over frame embeddings (CLIP4Clip: 512 wide, 8 heads).
POOLING_HEAD_WIDTH = 64


class TemporalAttention(nn.Module):
    """x + proj(attention over frames at each spatial position), for tokens laid out as [B * T, N, width]."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm = LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.proj = nn.Linear(width, width)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, tokens: torch.Tensor, frames: int) -> torch.Tensor:
        clips_frames, positions, width = tokens.shape
        # [B * T, N, D] -> [B * N, T, D]: one sequence per (clip, spatial position).
        over_time = tokens.view(clips_frames // frames, frames, positions, width).transpose(1, 2).reshape(-1, frames, width)
        normed = self.norm(over_time)
        mixed = self.proj(self.attn(normed, normed, normed, need_weights=False)[0])
        mixed = mixed.view(clips_frames // frames, positions, frames, width).transpose(1, 2).reshape(clips_frames, positions, width)
        return tokens + mixed


class DividedSpaceTime(nn.Module):
    """The temporal half of divided attention for every block of a ViT image tower, and the time embedding."""

    def __init__(self, width: int, heads: int, layers: int, max_frames: int):
        super().__init__()
        self.time_embedding = nn.Parameter(torch.zeros(max_frames, width))
        self.blocks = nn.ModuleList(TemporalAttention(width, heads) for _ in range(layers))

    def embed_time(self, tokens: torch.Tensor, frames: int) -> torch.Tensor:
        clips_frames, positions, width = tokens.shape
        timed = tokens.view(clips_frames // frames, frames, positions, width) + self.time_embedding[:frames, None, :].to(tokens.dtype)
        return timed.view(clips_frames, positions, width)


def mean_of_unit_frames(frame_features: torch.Tensor) -> torch.Tensor:
    """[B, T, E] -> [B, E]: the average of the normalised frame embeddings (CLIP4Clip's `_loose_similarity`)."""
    return F.normalize(frame_features, dim=-1).mean(dim=1)


class MeanPooling(nn.Module):
    """CLIP4Clip's meanP: the average of the normalised frame embeddings."""

    def forward(self, frame_features: torch.Tensor) -> torch.Tensor:
        return mean_of_unit_frames(frame_features)


class TemporalTransformerPooling(nn.Module):
    """CLIP4Clip's seqTransf over frame embeddings [B, T, E] -> [B, E]."""

    def __init__(self, embed_dim: int, layers: int, max_frames: int):
        super().__init__()
        heads = max(1, embed_dim // POOLING_HEAD_WIDTH)
        if embed_dim % heads:
            raise ValueError(f"model.video.temporal_layers: the embedding width {embed_dim} is not divisible into {heads} heads")
        self.frame_position = nn.Parameter(torch.empty(max_frames, embed_dim))
        nn.init.normal_(self.frame_position, std=0.01)
        self.transformer = Transformer(embed_dim, layers, heads)

    def forward(self, frame_features: torch.Tensor) -> torch.Tensor:
        frames = frame_features.shape[1]
        mixed = self.transformer(frame_features + self.frame_position[:frames].to(frame_features.dtype))
        return mean_of_unit_frames(mixed + frame_features)


def build_temporal_pooling(kind: str, embed_dim: int, layers: int, max_frames: int) -> nn.Module:
    if kind == "mean":
        return MeanPooling()
    if kind == "transformer":
        return TemporalTransformerPooling(embed_dim, layers, max_frames)
    raise ValueError(f"model.video.temporal_pooling: unknown {kind!r} (mean or transformer)")
