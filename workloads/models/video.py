"""`arch: video` — video-text models built on an image CLIP: the frames of a clip go through the image tower, then
are combined over time.

The `backbone` is the CLIP vlp builds from the preset (any image tower, `pooling` and MS-CLIP options included),
so `model.init_from` a clip checkpoint or a registered clip loads it as is and the video parts start fresh.
What `model.video` adds (workloads/models/video_temporal.py, video_mae.py, mov.py):

- temporal pooling of the frame embeddings: `mean` (CLIP4Clip meanP) or `transformer` (CLIP4Clip seqTransf);
- `attention: divided`: a temporal attention step before every spatial block of a ViT tower (TimeSformer,
  OmniVL's decoupled space-time attention); untrained, it leaves the image model's frame embeddings unchanged;
- masked video modeling (InternVideo's VideoMAE branch): a second pass of the ViT over tube-masked clips and a
  light decoder predicting the masked patches' pixels;
- MOV's motion branch: frame differences through a light network, fused into the (optionally frozen) frame
  embeddings.

Images are clips of one frame (`encode_image`), so image evaluation and joint image + video data need no other
path. `forward(videos, texts)` returns what workloads/objectives/video_pretraining.py consumes.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer
from torch import nn
from torch.utils.checkpoint import checkpoint

from vlp.workloads.models import clip
from vlp.workloads.models.mov import MotionBranch
from vlp.workloads.models.video_mae import MaskedVideoDecoder, patchify, take_patches, tube_mask
from vlp.workloads.models.video_temporal import DividedSpaceTime, build_temporal_pooling
from vlp.workloads.models.vision_tower import VisionTower, pool_tokens

# Image options of the `vlp` entry that belong to the frame encoder.
IMAGE_OPTIONS = ("pooling", "ggem", "early_specialization", "aux_adapter")
# Defaults of `model.video` (platform/spec/video.py) for a model_cfg that names only some of them.
DEFAULT_FRAMES = 8


class VideoCLIP(clip.OnClipBackbone):
    def __init__(self, model_cfg: dict):
        super().__init__()
        options = model_cfg.get("vlp", {})
        video = options.get("video") or {}
        towers_cfg = {key: value for key, value in model_cfg.items() if key != "vlp"}
        self.backbone = clip.build({**towers_cfg, "vlp": {key: options[key] for key in IMAGE_OPTIONS if key in options}})
        embed_dim = model_cfg["embed_dim"]
        self.max_frames = int(video.get("frames", DEFAULT_FRAMES))
        masked = video.get("masked_video") or {}
        self.mask_ratio = float(masked.get("mask_ratio", 0.75))
        needs_tokens = video.get("attention", "frame") == "divided" or float(masked.get("weight", 0.0)) > 0
        if needs_tokens:
            self._check_token_tower(model_cfg["vision_cfg"])
        visual = self.backbone.visual
        self.divided = None
        if video.get("attention", "frame") == "divided":
            self.divided = DividedSpaceTime(visual.transformer.width, visual.transformer.resblocks[0].attn.num_heads, len(visual.transformer.resblocks), self.max_frames)
        self.temporal_pooling = build_temporal_pooling(video.get("temporal_pooling", "mean"), embed_dim, int(video.get("temporal_layers", 2)), self.max_frames)
        self.decoder = None
        if float(masked.get("weight", 0.0)) > 0:
            self.patch_size = visual.patch_size[0]
            patches = visual.grid_size[0] * visual.grid_size[1]
            self.decoder = MaskedVideoDecoder(
                visual.transformer.width, int(masked.get("decoder_width", 64)), int(masked.get("decoder_layers", 1)),
                self.max_frames, patches, self.patch_size * self.patch_size * 3,
            )
        motion = video.get("motion_branch") or {}
        self.motion = None
        if motion.get("enabled"):
            self.motion = MotionBranch(embed_dim, int(motion.get("width", 64)), int(motion.get("layers", 1)), self.max_frames)
        self.freeze_image_encoder = bool(video.get("freeze_image_encoder"))
        self.freeze_text_encoder = bool(video.get("freeze_text_encoder"))
        self._freeze()

    def _check_token_tower(self, vision_cfg: dict) -> None:
        visual = self.backbone.visual
        if not isinstance(visual, VisionTransformer):
            raise ValueError("model.video: divided attention and masked video modeling need a ViT image tower (a preset with patch_size)")
        if isinstance(visual, VisionTower) and visual.aux is not None:
            raise ValueError("model.video: divided attention and masked video modeling do not combine with model.aux_adapter")
        if visual.attn_pool is not None or visual.final_ln_after_pool:
            raise ValueError("model.video: divided attention and masked video modeling need a ViT tower without attentional pooling")
        if vision_cfg.get("patch_dropout", 0.0) > 0:
            raise ValueError("model.video: divided attention and masked video modeling need the preset's patch_dropout at 0 (frames must keep the same patches)")

    def _freeze(self) -> None:
        """Frozen towers get no gradient and, since the optimizer skips them, no optimizer state. The temperature
        (and SigLIP bias) keep training: the new video embedding needs its own scale."""
        for name, parameter in self.backbone.named_parameters():
            is_image = name.startswith("visual.")
            if (is_image and self.freeze_image_encoder) or (not is_image and self.freeze_text_encoder and name not in ("logit_scale", "logit_bias")):
                parameter.requires_grad_(False)

    def train(self, mode: bool = True) -> "VideoCLIP":
        """A frozen tower stays in evaluation mode: a ResNet's batch norms must not move their running statistics."""
        super().train(mode)
        if self.freeze_image_encoder:
            self.backbone.visual.eval()
        return self

    def encode_text(self, texts: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        with torch.no_grad() if self.freeze_text_encoder else contextlib.nullcontext():
            return self.backbone.encode_text(texts, normalize=normalize)

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """An image is a clip of one frame."""
        return self.encode_video(images.unsqueeze(1), normalize=normalize)

    def encode_video(self, videos: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """[B, T, 3, H, W] normalised like images -> [B, embed_dim]."""
        clips, frames = videos.shape[:2]
        if frames > self.max_frames:
            raise ValueError(f"a clip of {frames} frames is longer than model.video.frames ({self.max_frames})")
        frame_features = self.encode_frames(videos.flatten(0, 1), frames).view(clips, frames, -1)
        features = self.temporal_pooling(frame_features)
        if self.motion is not None:
            features = self.motion(features, videos)
        return F.normalize(features, dim=-1) if normalize else features

    def encode_frames(self, frames: torch.Tensor, count: int) -> torch.Tensor:
        """[B * T, 3, H, W] (T = `count` consecutive frames per clip) -> frame embeddings [B * T, embed_dim]."""
        if self.divided is None:
            # No temporal parts inside the tower: a frozen one runs without building a graph.
            with torch.no_grad() if self.freeze_image_encoder else contextlib.nullcontext():
                return self.backbone.encode_image(frames)
        return pool_tokens(self.backbone.visual, self.frame_tokens(frames, count))

    def frame_tokens(self, frames: torch.Tensor, count: int, visible: torch.Tensor | None = None) -> torch.Tensor:
        """The ViT's tokens after its final LayerNorm, [B * T, 1 + P, width], with the temporal attention steps when
        `attention: divided`; `visible` [B, V]: keep only these patches of every frame (the class token stays)."""
        visual = self.backbone.visual
        tokens = visual._embeds(frames)
        if self.divided is not None:
            tokens = self.divided.embed_time(tokens, count)
        if visible is not None:
            per_frame = visible.repeat_interleave(count, dim=0)
            kept = tokens[:, 1:].gather(1, per_frame[..., None].expand(-1, -1, tokens.shape[-1]))
            tokens = torch.cat([tokens[:, :1], kept], dim=1)
        recompute = visual.transformer.grad_checkpointing and torch.is_grad_enabled()
        for index, block in enumerate(visual.transformer.resblocks):
            if self.divided is not None:
                tokens = self.divided.blocks[index](tokens, count)
            tokens = checkpoint(block, tokens, use_reentrant=False) if recompute else block(tokens)
        return visual.ln_post(tokens)

    def masked_video(self, videos: torch.Tensor) -> dict[str, torch.Tensor]:
        """Tube-mask the clips, encode the visible patches, decode the masked ones: predictions and their target
        pixels (raw, the loss normalises them per patch), both [B, T, M, patch_size * patch_size * 3]."""
        clips, frames = videos.shape[:2]
        visible, masked = tube_mask(clips, self.decoder.patches, self.mask_ratio, device=videos.device)
        tokens = self.frame_tokens(videos.flatten(0, 1), frames, visible)
        visible_tokens = tokens[:, 1:].reshape(clips, frames, visible.shape[1], -1)
        return {
            "masked_video_prediction": self.decoder(visible_tokens, visible, masked),
            "masked_video_target": take_patches(patchify(videos, self.patch_size), masked),
        }

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> dict[str, torch.Tensor]:
        """`images`: clips [B, T, 3, H, W]. Normalised embeddings, the exp'd temperature, and the masked-video
        outputs when that branch is on."""
        outputs = {
            "video_features": self.encode_video(images, normalize=True),
            "text_features": self.encode_text(texts, normalize=True),
            "logit_scale": self.logit_scale.exp(),
        }
        if self.logit_bias is not None:
            outputs["logit_bias"] = self.logit_bias
        if self.decoder is not None:
            outputs.update(self.masked_video(images))
        return outputs


def build(model_cfg: dict) -> torch.nn.Module:
    return VideoCLIP(model_cfg)
