"""`model.transvg` — visual grounding by a transformer over visual and text tokens with a [REG] token (TransVG)."""

from __future__ import annotations

from vlp.platform.spec.base import Section


class TransVGOptions(Section):
    """TransVG settings (for `arch: transvg`)."""

    language_conditioned: bool = False
    """TransVG++: fuse the expression into the ViT's own layers instead of a separate fusion stack."""
