"""`model.video` — video-text models on top of an image tower (CLIP4Clip, TimeSformer-style attention, VideoMAE, MOV)."""

from __future__ import annotations

from typing import Literal

from vlp.platform.spec.base import Section


class VideoOptions(Section):
    """How frames are encoded and combined over time (for `arch: video`)."""

    temporal_pooling: Literal["mean", "transformer"] = "mean"
    """`mean`: average the frame embeddings (CLIP4Clip meanP); `transformer`: a temporal transformer over them (seqTransf)."""
