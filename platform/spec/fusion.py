"""`model.fusion` and `model.masked_modeling` — fusion encoders (METER, FLAVA) and masked data modeling (VLC, BEiT-3)."""

from __future__ import annotations

from typing import Literal

from vlp.platform.spec.base import Section

FUSION_ARCHS = ("fusion", "flava")
MASKED_MODELING_ARCHS = ("fusion", "flava", "multiway")


class FusionOptions(Section):
    """The multimodal encoder on top of the unimodal towers (for `arch: fusion` and `arch: flava`)."""

    kind: Literal["co_attention", "merged"] = "merged"
    """`co_attention`: one stream per modality, each layer cross-attends to the other (METER's best); `merged`:
    self-attention over the concatenated image and text tokens (FLAVA's multimodal encoder)."""


class MaskedModelingOptions(Section):
    """Masked language and image modeling terms (for `arch: fusion`, `flava`, and BEiT-3-style `multiway`)."""
