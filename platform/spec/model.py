"""`model:` — which architecture to train."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vlp.platform.spec.base import Section


class ModelSection(Section):
    """The model to build. Architectures are data: `preset` names a JSON file under workloads/models/presets."""

    arch: Literal["clip"] = "clip"
    """Architecture family: `clip` (separate towers)."""
    preset: str = Field("shapes-rn-tiny", pattern=r"^[A-Za-z0-9._-]+$")
    """Model preset name (a vlp preset, or an open_clip model config name such as `ViT-B-32`)."""
    init_from: str | None = None
    """Start from these weights: a checkpoint URI (local or s3://) or `models:/NAME@ALIAS`."""
