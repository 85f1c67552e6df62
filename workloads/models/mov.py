"""MOV's motion branch: video-specific cues beside a frozen image-text model, fused into its video embedding.

MOV (Qian et al., "Multimodal Open-Vocabulary Video Classification via Pre-Trained Vision and Language Models")
keeps CLIP's encoders frozen and adds light encoders for other cues (optical flow, audio) whose features are
fused with the frozen vision features by cross-attention. Here the cue is the frame difference: each step
t -> t + 1 is embedded by a small conv network from the frame and its difference to the next one (the difference
alone cannot tell a bright shape moving left from a dark one moving right), a small transformer runs over the
steps, and the appearance embedding (the frozen frames pooled over time) attends to the motion tokens. The
fusion's output projection starts at zero, so the untrained model embeds clips exactly as the frozen CLIP's
frame mean does, and zero-shot classes that need no motion keep what the image model knew.
"""

from __future__ import annotations

import torch
from open_clip.transformer import LayerNorm, Transformer
from torch import nn

MOTION_HEAD_WIDTH = 32


class FrameDifferenceEncoder(nn.Module):
    """[B, T, 3, H, W] -> one token per step t -> t + 1: [B, T - 1, width]."""

    def __init__(self, width: int):
        super().__init__()
        channels = max(16, width // 2)
        self.conv = nn.Sequential(
            nn.Conv2d(6, channels, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.GELU(),
            nn.AdaptiveAvgPool2d(1),
        )

    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        clips, frames = videos.shape[:2]
        steps = torch.cat([videos[:, :-1], videos[:, 1:] - videos[:, :-1]], dim=2).flatten(0, 1)
        return self.conv(steps).view(clips, frames - 1, -1)


class MotionBranch(nn.Module):
    """appearance [B, E] + motion cues of the clip -> fused video embedding [B, E]."""

    def __init__(self, embed_dim: int, width: int, layers: int, max_frames: int):
        super().__init__()
        heads = max(1, width // MOTION_HEAD_WIDTH)
        if width % heads:
            raise ValueError(f"model.video.motion_branch.width {width}: must be a multiple of {MOTION_HEAD_WIDTH} (or smaller)")
        self.encoder = FrameDifferenceEncoder(width)
        self.step_position = nn.Parameter(torch.empty(max(1, max_frames - 1), width))
        nn.init.normal_(self.step_position, std=0.02)
        self.transformer = Transformer(width, layers, heads)
        self.query = nn.Linear(embed_dim, width)
        self.norm = LayerNorm(width)
        self.fusion = nn.MultiheadAttention(width, heads, batch_first=True)
        self.out = nn.Linear(width, embed_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, appearance: torch.Tensor, videos: torch.Tensor) -> torch.Tensor:
        steps = videos.shape[1] - 1
        if steps == 0:  # a still image: nothing moves
            return appearance
        motion = self.encoder(videos) + self.step_position[:steps].to(videos.dtype)
        motion = self.norm(self.transformer(motion))
        fused = self.fusion(self.query(appearance).unsqueeze(1), motion, motion, need_weights=False)[0].squeeze(1)
        return appearance + self.out(fused)
