"""InternVideo's masked video modeling branch (VideoMAE): tube masking and a light decoder.

Tube masking hides the same spatial patches in every frame of a clip, so a masked patch cannot be copied from
the frame before or after it: the encoder must model appearance and motion. The encoder sees only the visible
patches (the class token stays); the decoder, narrower and shallower than the encoder, gets the visible tokens
at their places, a learned mask token everywhere else, a space-time position embedding, and predicts the pixels
of the masked patches. The loss (workloads/objectives/masked_video.py) compares them with the patches' pixels
normalised per patch.
"""

from __future__ import annotations

import torch
from open_clip.transformer import LayerNorm, Transformer
from torch import nn

# Head width of the decoder's attention.
DECODER_HEAD_WIDTH = 32


def tube_mask(clips: int, patches: int, ratio: float, device: torch.device | None = None, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(visible, masked) patch indices [clips, V] and [clips, M], one random draw per clip shared by all its
    frames; at least one patch stays visible and at least one is masked."""
    if patches < 2:
        raise ValueError("masked video modeling needs at least 2 patches per frame (model.video.masked_video needs a ViT preset with patch_size < image_size)")
    masked_count = min(patches - 1, max(1, round(patches * ratio)))
    order = torch.rand(clips, patches, device=device, generator=generator).argsort(dim=1)
    visible, masked = order[:, masked_count:], order[:, :masked_count]
    return visible.sort(dim=1).values, masked.sort(dim=1).values


def patchify(videos: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[B, T, C, H, W] -> [B, T, P, patch_size * patch_size * C], patches in the order a ViT's patch embedding
    flattens its grid (row by row), pixels of a patch as (row, column, channel)."""
    clips, frames, channels, height, width = videos.shape
    rows, columns = height // patch_size, width // patch_size
    grid = videos.reshape(clips, frames, channels, rows, patch_size, columns, patch_size)
    return grid.permute(0, 1, 3, 5, 4, 6, 2).reshape(clips, frames, rows * columns, patch_size * patch_size * channels)


def take_patches(values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """values [B, T, P, D], indices [B, K] -> [B, T, K, D]: the same patches of every frame."""
    clips, frames, _, depth = values.shape
    return values.gather(2, indices[:, None, :, None].expand(clips, frames, indices.shape[1], depth))


class MaskedVideoDecoder(nn.Module):
    """Visible encoder tokens [B, T, V, encoder_width] -> predicted pixels of the masked patches [B, T, M, pixels]."""

    def __init__(self, encoder_width: int, width: int, layers: int, max_frames: int, patches: int, patch_pixels: int):
        super().__init__()
        heads = max(1, width // DECODER_HEAD_WIDTH)
        if width % heads:
            raise ValueError(f"model.video.masked_video.decoder_width {width}: must be a multiple of {DECODER_HEAD_WIDTH} (or smaller)")
        self.patches = patches
        self.embed = nn.Linear(encoder_width, width)
        self.mask_token = nn.Parameter(torch.empty(width))
        self.position = nn.Parameter(torch.empty(max_frames, patches, width))
        nn.init.normal_(self.mask_token, std=0.02)
        nn.init.normal_(self.position, std=0.02)
        self.transformer = Transformer(width, layers, heads)
        self.norm = LayerNorm(width)
        self.head = nn.Linear(width, patch_pixels)

    def forward(self, visible_tokens: torch.Tensor, visible: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        clips, frames, _, _ = visible_tokens.shape
        embedded = self.embed(visible_tokens)
        width = embedded.shape[-1]
        tokens = self.mask_token.to(embedded.dtype).expand(clips, frames, self.patches, width).clone()
        tokens.scatter_(2, visible[:, None, :, None].expand(clips, frames, visible.shape[1], width), embedded)
        tokens = tokens + self.position[:frames].to(embedded.dtype)
        # Joint space-time attention: the decoder is small and its sequence short (T x P tokens).
        decoded = self.transformer(tokens.reshape(clips, frames * self.patches, width)).view(clips, frames, self.patches, width)
        return self.head(self.norm(take_patches(decoded, masked)))
