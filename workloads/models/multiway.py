"""`arch: multiway` — the Multiway transformer of VLMo / BEiT-3 used as two towers: every layer's self-attention
is shared between the modalities, and each modality keeps its own FFN (its "expert") and its own LayerNorms.

Run as a dual encoder (each modality passes through the shared attention with its own expert), which is how VLMo
scores retrieval; the fused vision-language expert of VLMo's top layers belongs to a fusion encoder and is not built.
`share.from_layer` (default 0: all layers) leaves lower layers fully modality-specific.
"""

from __future__ import annotations

import torch

from vlp.workloads.models import clip
from vlp.workloads.models.shared_towers import check_tieable, image_blocks, text_blocks
from vlp.workloads.models.tying import tie_blocks

SHARED_PARTS = ("attn",)


def build(model_cfg: dict) -> torch.nn.Module:
    check_tieable(model_cfg, "multiway")
    model = clip.build(model_cfg)
    tie_blocks(image_blocks(model), text_blocks(model), model_cfg["vlp"].get("share_from_layer", 0), SHARED_PARTS)
    return model
