"""`model.fusion` and `model.masked_modeling` — fusion encoders (METER, FLAVA) and masked data modeling (VLC, BEiT-3).

Fields left unset (None) take the architecture's default: METER's for `arch: fusion` (co-attention, MLM + ITM with
random negatives), FLAVA's for `arch: flava` (merged attention; contrastive, ITM with hard negatives, unimodal MLM
and MIM, masked multimodal modeling). See workloads/models/fusion.py.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from vlp.platform.spec.base import Section

FUSION_ARCHS = ("fusion", "flava")
MASKED_MODELING_ARCHS = ("fusion", "flava", "multiway")


class FusionOptions(Section):
    """The multimodal encoder on top of the unimodal towers and the weights of its loss terms (for `arch: fusion`
    and `arch: flava`)."""

    kind: Literal["co_attention", "merged"] | None = None
    """`co_attention`: one stream per modality, each layer self-attends, then cross-attends to the other stream
    (METER's best); `merged`: self-attention over a fused [CLS] and the concatenated image and text tokens (FLAVA's
    multimodal encoder). Default: co_attention for fusion, merged for flava."""
    layers: int = Field(2, ge=1, le=48)
    """Fusion layers (with co_attention: layers per stream)."""
    width: int | None = Field(None, ge=8, le=8192)
    """Width of the fusion layers (the towers' tokens are projected to it); default: the text tower's width."""
    heads: int | None = Field(None, ge=1, le=128)
    """Attention heads of the fusion layers (must divide `width`); default: width / 32, at least 1."""
    mlp_ratio: float = Field(4.0, gt=0, le=16)
    """Hidden width of each fusion layer's MLP, as a multiple of `width`."""
    contrastive_weight: float | None = Field(None, ge=0)
    """Weight of the InfoNCE loss on the unimodal towers' pooled embeddings (`objective:` sets how it gathers).
    Default: 0 for fusion (METER trains no contrastive head), 1 for flava."""
    itm_weight: float = Field(1.0, ge=0)
    """Weight of image-text matching: cross-entropy of a 2-way head on the fused [CLS] of each pair, of the pair
    with a negative text and of a negative image with the text."""
    itm_negatives: Literal["hard", "random"] | None = None
    """How ITM negatives are drawn from the global batch: `hard` with probability softmax of the contrastive
    similarity (ALBEF/BLIP; needs contrastive_weight > 0), `random` uniformly. Captions equal to the positive's are
    never drawn. Default: hard when contrastive_weight > 0, random otherwise."""
    mlm_weight: float = Field(1.0, ge=0)
    """Weight of masked language modeling predicted from the fused text positions (METER, VLC; with flava the text
    half of masked multimodal modeling)."""
    mim_weight: float | None = Field(None, ge=0)
    """Weight of masked image modeling predicted from the fused image positions (VLC; with flava the image half of
    masked multimodal modeling): normalised pixels of the masked patches, needs a ViT image tower. Default: 0 for
    fusion, 1 for flava."""
    unimodal_mlm_weight: float | None = Field(None, ge=0)
    """Weight of MLM predicted by the text tower alone (FLAVA's MLM). Default: 0 for fusion, 1 for flava."""
    unimodal_mim_weight: float | None = Field(None, ge=0)
    """Weight of MIM predicted by the image tower alone (FLAVA's MIM; needs a ViT). Default: 0 for fusion, 1 for flava."""
    alignment_weight: float = Field(0.0, ge=0)
    """Weight of fine-grained patch-token alignment: FILIP's token-wise late-interaction contrastive loss between
    the image tower's patch tokens and the text tower's content tokens (needs a ViT)."""
    joint_masking: bool | None = None
    """Mask image and text in one fused pass (FLAVA's masked multimodal modeling) instead of one pass each (text
    masked beside the whole image for MLM, image masked beside the whole text for MIM; METER, VLC). Default: false
    for fusion, true for flava."""

    @model_validator(mode="after")
    def _consistent(self) -> "FusionOptions":
        if self.width is not None and self.heads is not None and self.width % self.heads:
            raise ValueError(f"model.fusion.width {self.width} must be a multiple of model.fusion.heads {self.heads}")
        if self.itm_negatives == "hard" and self.contrastive_weight == 0:
            raise ValueError("model.fusion.itm_negatives hard samples from the contrastive similarities: it needs model.fusion.contrastive_weight > 0")
        return self


class MaskedModelingOptions(Section):
    """How captions and images are masked for the masked terms (for `arch: fusion`, `flava`, and BEiT-3-style
    masked data modeling on `multiway`), and BEiT-3's loss weights."""

    enabled: bool = False
    """Arch multiway only: train BEiT-3's masked data modeling (masked images, masked captions and masked pairs
    through the shared attention). Fusion and flava turn their masked terms on by `model.fusion`'s weights."""
    text_mask_probability: float = Field(0.15, gt=0, lt=1)
    """Chance that each caption token (not the start, end or padding tokens) is chosen for prediction (BERT: 0.15)."""
    mask_token_share: float = Field(0.8, ge=0, le=1)
    """Share of the chosen tokens replaced by [MASK] (BERT: 0.8)."""
    random_token_share: float = Field(0.1, ge=0, le=1)
    """Share of the chosen tokens replaced by a random vocabulary token (BERT: 0.1); the rest stay as they are."""
    image_mask_ratio: float = Field(0.4, gt=0, lt=1)
    """Share of an image's patches masked (BEiT, FLAVA: 0.4; MAE: 0.75)."""
    image_masking: Literal["random", "block"] = "random"
    """`random`: a uniform random subset of the patches (MAE); `block`: rectangles of patches (BEiT, FLAVA)."""
    norm_pix_loss: bool = True
    """Regress each masked patch's pixels normalised by the patch's own mean and variance (MAE's norm_pix_loss)
    instead of the raw (model-normalised) pixels."""
    image_weight: float = Field(1.0, ge=0)
    """Arch multiway: weight of masked image modeling on images alone (BEiT-3's monomodal image term)."""
    text_weight: float = Field(1.0, ge=0)
    """Arch multiway: weight of masked language modeling on captions alone (BEiT-3's monomodal text term)."""
    pair_weight: float = Field(1.0, ge=0)
    """Arch multiway: weight of masked modeling of image-caption pairs, MLM on the caption and MIM on the image of
    the concatenated sequence through the shared attention (BEiT-3's multimodal term)."""
    contrastive_weight: float = Field(0.0, ge=0)
    """Arch multiway: weight of the InfoNCE loss on the pooled embeddings kept beside masked data modeling
    (BEiT-3 pretrains without it: 0)."""
    vl_expert_layers: int = Field(1, ge=0)
    """Arch multiway: the top N layers run image-caption pairs through a vision-language FFN expert shared by both
    modalities' positions (BEiT-3 uses the top 3 of 24); below them each position uses its modality's FFN."""

    @model_validator(mode="after")
    def _shares_fit(self) -> "MaskedModelingOptions":
        if self.mask_token_share + self.random_token_share > 1:
            raise ValueError("model.masked_modeling.mask_token_share + random_token_share must be at most 1")
        return self
