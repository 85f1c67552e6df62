"""`model.video` — video-text models on top of an image tower (CLIP4Clip, TimeSformer-style attention, VideoMAE, MOV).

What needs the image tower itself (divided attention and masked video modeling need a ViT preset) is checked when
the model is built, which preflight does before a run starts: this section cannot see the preset's towers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from vlp.platform.spec.base import Section


class MaskedVideoOptions(Section):
    """InternVideo's masked video modeling (VideoMAE): tube-masked clips through the image ViT, a light decoder
    predicting the masked patches' pixels (normalised per patch)."""

    weight: float = Field(0.0, ge=0)
    """Weight of the reconstruction loss; 0 turns the branch off (no decoder, no second encoder pass)."""
    mask_ratio: float = Field(0.75, gt=0, lt=1)
    """Share of each frame's patches hidden; the same patches in every frame of a clip (tube masking). VideoMAE
    uses 0.9 on 16-frame clips; fewer frames carry less redundancy."""
    decoder_width: int = Field(64, ge=8, le=2048)
    """Width of the decoder (a multiple of 32, or less than 32)."""
    decoder_layers: int = Field(1, ge=1, le=24)
    """Transformer layers of the decoder."""


class MotionBranchOptions(Section):
    """MOV's motion branch: frame differences through a light conv + transformer network, fused into the frame
    embeddings by cross-attention (starting from no change)."""

    enabled: bool = False
    """Add the motion branch."""
    width: int = Field(64, ge=8, le=2048)
    """Width of the motion tokens (a multiple of 32, or less than 32)."""
    layers: int = Field(1, ge=1, le=24)
    """Transformer layers over the motion tokens."""


class VideoOptions(Section):
    """How frames are encoded and combined over time (for `arch: video`)."""

    frames: int = Field(8, ge=1, le=256)
    """Frames per clip (T) the model is built for: the most frames a clip may have (time embeddings have this many
    positions)."""
    temporal_pooling: Literal["mean", "transformer"] = "mean"
    """`mean`: average the frame embeddings (CLIP4Clip meanP); `transformer`: a temporal transformer over them (seqTransf)."""
    temporal_layers: int = Field(2, ge=1, le=24)
    """Layers of the temporal transformer (only with `temporal_pooling: transformer`; CLIP4Clip uses 4)."""
    attention: Literal["frame", "divided"] = "frame"
    """`frame`: the image tower sees each frame alone; `divided`: divided space-time attention (TimeSformer, OmniVL),
    a temporal attention step across frames before every spatial block of the ViT (needs a ViT preset)."""
    freeze_image_encoder: bool = False
    """Keep the image tower as loaded (`init_from`): no gradient, no optimizer state (MOV). Temporal parts, the
    motion branch and the temperature still train."""
    freeze_text_encoder: bool = False
    """Keep the text tower as loaded: no gradient, no optimizer state (MOV freezes both towers)."""
    contrastive_weight: float = Field(1.0, ge=0)
    """Weight of the video-text contrastive loss (`objective.contrastive`, gathered across processes like images)."""
    unified_contrastive_weight: float = Field(0.0, ge=0)
    """Weight of OmniVL's unified contrastive loss: clips and images with a class label are positives of every
    sample of their class, unlabelled pairs only of their own caption (InfoNCE on unlabelled data)."""
    masked_video: MaskedVideoOptions = MaskedVideoOptions()
    """Masked video modeling (InternVideo's VideoMAE branch; needs a ViT preset)."""
    motion_branch: MotionBranchOptions = MotionBranchOptions()
    """MOV's motion branch on the (usually frozen) image-text model."""

    @model_validator(mode="after")
    def _consistent(self) -> "VideoOptions":
        chosen = self.changed_fields()
        if self.contrastive_weight == 0 and self.unified_contrastive_weight == 0:
            raise ValueError("contrastive_weight and unified_contrastive_weight are both 0; the video-text embedding needs one of them")
        if "temporal_layers" in chosen and self.temporal_pooling != "transformer":
            raise ValueError("temporal_layers applies only with temporal_pooling: transformer")
        if self.masked_video.weight == 0 and self.masked_video.changed_fields():
            raise ValueError("masked_video: set weight > 0 to use masked video modeling (its other fields apply only then)")
        if not self.motion_branch.enabled and self.motion_branch.changed_fields():
            raise ValueError("motion_branch: set enabled: true to use the motion branch (its other fields apply only then)")
        if self.masked_video.weight > 0 and self.freeze_image_encoder:
            raise ValueError("masked_video trains the image encoder; it does not combine with freeze_image_encoder")
        temporal = [name for name, used in (("attention: divided", self.attention == "divided"), ("temporal_pooling: transformer", self.temporal_pooling == "transformer"),
                                            ("motion_branch", self.motion_branch.enabled)) if used]
        if temporal and self.frames < 2:
            raise ValueError(f"frames {self.frames}: {temporal[0]} needs clips of at least 2 frames")
        if self.freeze_image_encoder and self.freeze_text_encoder and not temporal:
            raise ValueError("both towers frozen and nothing temporal to train (add temporal_pooling: transformer, attention: divided or motion_branch)")
        return self
