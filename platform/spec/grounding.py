"""`model.transvg` — visual grounding by a transformer over visual and text tokens with a [REG] token (TransVG), or
by a language-conditioned ViT (TransVG++)."""

from __future__ import annotations

from pydantic import Field, model_validator

from vlp.platform.spec.base import Section

FUSION_STACK_FIELDS = ("fusion_layers", "fusion_width", "fusion_heads", "dropout")
CONDITIONED_VIT_FIELDS = ("conditioned_layers", "prompt_tokens")


class TransVGOptions(Section):
    """TransVG settings (for `arch: transvg`): how the modalities fuse, the loss weights, what stays frozen."""

    language_conditioned: bool = False
    """TransVG++: fuse the expression into the ViT's own layers instead of a separate fusion stack: before each of the
    upper `conditioned_layers` blocks a language prompter (learnable queries reading the expression's tokens) adds
    `prompt_tokens` prompts to the sequence, a [REG] token joins it, and the ViT's attention fuses them. Needs a
    ViT image tower."""
    conditioned_layers: int | None = Field(None, ge=1)
    """TransVG++: how many of the ViT's upper layers take language prompts; default: the upper half."""
    prompt_tokens: int = Field(4, ge=1, le=64)
    """TransVG++: language prompts written into the sequence before each conditioned layer."""
    fusion_layers: int = Field(2, ge=1, le=24)
    """TransVG: transformer encoder layers over the [REG], visual and text tokens (the paper uses 6)."""
    fusion_width: int = Field(128, ge=8, le=4096)
    """TransVG: width both modalities are projected to before fusion (the paper uses 256)."""
    fusion_heads: int = Field(4, ge=1, le=64)
    """TransVG: attention heads of the fusion layers (the paper uses 8); must divide `fusion_width`."""
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    """TransVG: dropout in the fusion layers (the paper uses 0.1)."""
    l1_weight: float = Field(5.0, ge=0.0)
    """Weight of the L1 loss on the normalised box centre and size (TransVG uses 5)."""
    giou_weight: float = Field(2.0, ge=0.0)
    """Weight of the generalized-IoU loss (TransVG uses 2)."""
    freeze_image_tower: bool = False
    """Keep the image tower's weights (from `model.init_from`) fixed; TransVG++'s prompters and the [REG] token still train."""
    freeze_text_tower: bool = False
    """Keep the text tower's weights fixed."""

    @model_validator(mode="after")
    def _consistent(self) -> "TransVGOptions":
        chosen = self.changed_fields()
        stray = [name for name in (CONDITIONED_VIT_FIELDS if not self.language_conditioned else FUSION_STACK_FIELDS) if name in chosen]
        if stray:
            which = "TransVG++ (language_conditioned: true)" if not self.language_conditioned else "TransVG's fusion stack (language_conditioned: false)"
            raise ValueError(f"model.transvg.{stray[0]} applies only to {which}")
        if self.fusion_width % self.fusion_heads:
            raise ValueError(f"model.transvg.fusion_width {self.fusion_width} is not a multiple of fusion_heads {self.fusion_heads}")
        if self.l1_weight == 0 and self.giou_weight == 0:
            raise ValueError("model.transvg: l1_weight and giou_weight are both 0: nothing would train the box")
        return self
