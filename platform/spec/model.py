"""`model:` — which architecture to train: the sharing spectrum (clip → multiway → msclip), CoCa and PACL."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from vlp.platform.spec.base import Section
from vlp.platform.spec.fusion import FUSION_ARCHS, MASKED_MODELING_ARCHS, FusionOptions, MaskedModelingOptions
from vlp.platform.spec.grounding import TransVGOptions
from vlp.platform.spec.video import VideoOptions

REGISTERED_MODEL = re.compile(r"^models:/[^/@\s]+(@[A-Za-z0-9_-]+|/\d+)$")
TRANSFORMER_ARCHS = ("msclip", "multiway")
# Which architectures each option section applies to (one place: the validator and `compose_model_cfg` read it).
ARCH_OPTIONS = {
    "share": TRANSFORMER_ARCHS,
    "coca": ("coca",),
    "pacl": ("pacl",),
    "fusion": FUSION_ARCHS,
    "masked_modeling": MASKED_MODELING_ARCHS,
    "transvg": ("transvg",),
    "video": ("video",),
}
# Architectures whose weights can start from a plain clip checkpoint (their towers are CLIP's).
STARTS_FROM_CLIP = ("pacl", "fusion", "flava", "transvg", "video")


class GGeMOptions(Section):
    """Group generalized-mean pooling of the image tokens (used when `pooling: ggem`)."""

    groups: int | None = Field(None, ge=1)
    """Channel groups, each with one learnable exponent; default: one group per attention head of the image tower."""
    init_p: float = Field(3.0, gt=0, le=100)
    """Initial exponent of every group: 1 is mean pooling, large values approach max pooling."""
    eps: float = Field(1e-6, gt=0)
    """Token values are clamped to at least this before the power (the generalized mean needs positive inputs)."""


class ShareOptions(Section):
    """What the image and text towers share (for `arch: msclip` and `arch: multiway`)."""

    from_layer: int | None = Field(None, ge=0)
    """Tie the transformer layers with index >= this (0-based) between the towers; default: 1 for msclip (the first
    layer stays modality-specific, as in MS-CLIP) and 0 for multiway (every layer shares its attention)."""


class AuxAdapterOptions(Section):
    """MS-CLIP's parallel branch: a small conv network on the image whose features are added to the patch tokens."""

    enabled: bool = False
    """Add the parallel conv branch and its lateral adapters to the image tower."""
    layers: tuple[int, ...] = Field((1,), min_length=1)
    """Image-transformer layer indices (0-based) before which a lateral adapter adds branch features to the patch tokens."""
    channels: int = Field(32, ge=4, le=1024)
    """Channels of the conv branch."""


class CocaOptions(Section):
    """CoCa: a unimodal text encoder, then multimodal decoder layers that cross-attend to the image tokens."""

    decoder_layers: int | None = Field(None, ge=1)
    """Multimodal decoder layers; default: as many as the text tower has."""
    contrastive_weight: float = Field(1.0, gt=0)
    """Weight of the contrastive loss on the unimodal embeddings."""
    caption_weight: float = Field(2.0, gt=0)
    """Weight of the autoregressive captioning loss (CoCa's default is 2)."""
    eval_captions: int = Field(8, ge=0, le=1000)
    """Captions generated for the first N evaluation images and logged to MLflow as a text artifact."""
    max_caption_tokens: int = Field(20, ge=1, le=255)
    """Most tokens a generated caption may have."""


class PaclOptions(Section):
    """PACL: each patch token embedded by a small residual MLP; a text attends over the patches to pool the image."""

    freeze_backbone: bool = False
    """Freeze the CLIP backbone (as in the PACL paper) and train only the patch embedder and the temperature."""
    embedder_hidden: int | None = Field(None, ge=1)
    """Hidden width of the residual MLP that embeds each patch token; default: 2 x the embedding dimension."""
    patch_temperature: float = Field(0.1, gt=0, le=10)
    """Temperature of the softmax over patch-text cosine similarities that weights the patches."""
    global_loss_weight: float = Field(0.0, ge=0)
    """Weight of an extra contrastive term on the backbone's pooled image embedding (0: the pure PACL loss, and
    the backbone's pooling parameters, which no loss would reach, are frozen)."""


class OpenClipReference(Section):
    """An open_clip architecture by config name, with optional weights from a local file."""

    open_clip: str = Field(pattern=r"^[A-Za-z0-9._/-]+$")
    """open_clip model config name (see `open_clip.list_models()`), e.g. `ViT-B-32`."""
    checkpoint: str | None = None
    """Local path of an open_clip state dict (`.pt`, `.pth`, `.bin`, `.safetensors`); none: random initialisation."""
    pretrained: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]+$")
    """open_clip pretrained tag the checkpoint was released as (see `open_clip.list_pretrained_tags_by_model`), e.g.
    `webli` for ViT-B-16-SigLIP: its image preprocessing (mean, std, interpolation, resize mode) is used, as
    `open_clip.create_model_and_transforms(CONFIG, pretrained=TAG)` would. Nothing is downloaded."""


class PreprocessOptions(Section):
    """Image preprocessing overrides (open_clip's `preprocess_cfg`); unset fields keep the model's own."""

    mean: tuple[float, float, float] | None = None
    """Per-channel (RGB) mean subtracted after scaling pixels to [0, 1]; default: the model's (OpenAI's for most)."""
    std: tuple[float, float, float] | None = Field(None)
    """Per-channel (RGB) standard deviation the pixels are divided by; default: the model's."""
    interpolation: Literal["bicubic", "bilinear"] | None = None
    """Resampling filter for resizing; default: the model's (bicubic)."""
    resize_mode: Literal["shortest", "longest", "squash"] | None = None
    """`shortest`: resize the shorter side, centre-crop; `longest`: resize the longer side, pad with `fill_color`;
    `squash`: resize both sides, ignoring the aspect ratio (SigLIP); default: the model's (shortest)."""
    fill_color: int | None = Field(None, ge=0, le=255)
    """Grey level of the padding in `longest` mode; default: the model's (0)."""

    @model_validator(mode="after")
    def _std_positive(self) -> "PreprocessOptions":
        if self.std is not None and min(self.std) <= 0:
            raise ValueError("model.preprocess.std: every value must be positive")
        return self


class ModelSection(Section):
    """The model to build. Architectures are data: `preset` names a JSON file under workloads/models/presets."""

    arch: Literal["clip", "msclip", "multiway", "coca", "pacl", "fusion", "flava", "transvg", "video"] = "clip"
    """Architecture family: `clip` (separate towers, open_clip's CLIP), `msclip` (attention and MLP tied between the
    towers from `share.from_layer` up), `multiway` (attention tied, one FFN per modality), `coca` (contrastive +
    captioning), `pacl` (patch-aligned contrastive learning on a CLIP backbone), `fusion` (a multimodal encoder on
    the towers, METER), `flava` (unimodal and multimodal encoders trained jointly), `transvg` (visual grounding:
    a box regressed from a [REG] token), `video` (clips encoded frame by frame and combined over time)."""
    preset: str = Field("shapes-rn-tiny", pattern=r"^[A-Za-z0-9._-]+$")
    """Model preset name (a vlp preset, or an open_clip model config name such as `ViT-B-32`)."""
    pooling: Literal["cls", "mean", "ggem"] = "cls"
    """How the image tower pools its tokens: `cls` (class token; a ResNet tower's attention pool), `mean` (mean of the
    patch tokens), `ggem` (group generalized mean of the patch tokens, see `ggem`)."""
    ggem: GGeMOptions = GGeMOptions()
    """GGeM settings (only with `pooling: ggem`)."""
    share: ShareOptions = ShareOptions()
    """Which layers the towers share (only with `arch: msclip` or `arch: multiway`)."""
    early_specialization: bool = False
    """Replace the ViT patch embedding by a small residual conv stem with total stride = patch size (MS-CLIP)."""
    aux_adapter: AuxAdapterOptions = AuxAdapterOptions()
    """Parallel conv branch with lateral adapters into the image transformer (MS-CLIP)."""
    coca: CocaOptions = CocaOptions()
    """CoCa settings and loss weights (only with `arch: coca`)."""
    pacl: PaclOptions = PaclOptions()
    """PACL settings (only with `arch: pacl`)."""
    fusion: FusionOptions = FusionOptions()
    """The multimodal encoder (only with `arch: fusion` or `arch: flava`)."""
    masked_modeling: MaskedModelingOptions = MaskedModelingOptions()
    """Masked language and image modeling (with `arch: fusion`, `flava`, or `multiway` for BEiT-3-style masked data modeling)."""
    transvg: TransVGOptions = TransVGOptions()
    """Visual grounding settings (only with `arch: transvg`)."""
    video: VideoOptions = VideoOptions()
    """Video settings (only with `arch: video`)."""
    preprocess: PreprocessOptions | None = None
    """Override the model's image preprocessing (normalisation, resizing), for training and evaluation alike; it is
    stored with the model (checkpoints, `open_clip_config.json`) so every later use sees the same images."""
    init_from: str | OpenClipReference | None = None
    """Start from these weights, whose architecture replaces `preset`: `models:/NAME@ALIAS` (or `models:/NAME/VERSION`),
    a vlp checkpoint URI (local path or s3://), or `{open_clip: CONFIG, checkpoint: FILE}`. With `arch: pacl` the
    weights (a clip) become the backbone."""

    @model_validator(mode="after")
    def _options_match_the_arch(self) -> "ModelSection":
        chosen = self.changed_fields()
        for options, archs in ARCH_OPTIONS.items():
            if options in chosen and self.arch not in archs:
                raise ValueError(f"model.{options} applies to arch {' or '.join(archs)}, not {self.arch}")
        if self.arch == "multiway" and "masked_modeling" in chosen and not self.masked_modeling.enabled:
            raise ValueError("model.masked_modeling on arch multiway takes effect with model.masked_modeling.enabled: true")
        if "ggem" in chosen and self.pooling != "ggem":
            raise ValueError("model.ggem applies only with model.pooling: ggem")
        if self.arch == "pacl" and (self.early_specialization or self.aux_adapter.enabled):
            raise ValueError("model.early_specialization and model.aux_adapter do not apply to arch pacl (its backbone is a plain CLIP)")
        if self.init_from is not None and "preset" in chosen:
            raise ValueError("set model.preset or model.init_from, not both (the weights bring their architecture)")
        if isinstance(self.init_from, OpenClipReference) and self.arch not in ("clip", *STARTS_FROM_CLIP):
            raise ValueError(f"open_clip weights have separate towers: use them with arch clip, {', '.join(STARTS_FROM_CLIP)}; not {self.arch}")
        if isinstance(self.init_from, str) and self.init_from.startswith("models:") and not REGISTERED_MODEL.match(self.init_from):
            raise ValueError(f"model.init_from {self.init_from!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
        return self

    @property
    def shared_from_layer(self) -> int:
        """The first tied layer: `share.from_layer`, or the architecture's default."""
        if self.share.from_layer is not None:
            return self.share.from_layer
        return 1 if self.arch == "msclip" else 0
