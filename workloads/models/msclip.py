"""`arch: msclip` — MS-CLIP's modality-shared transformer (You et al., "Learning Visual Representation from
Modality-Shared Contrastive Language-Image Pre-training").

One transformer serves both modalities: for every layer >= `share.from_layer` (default 1) the attention (in-proj
and out-proj) and the MLP are the same modules in both towers. Everything modality-specific stays per tower: all
LayerNorms, the patch and token embeddings, positional embeddings, the layers below `from_layer`, the final
projections. Options from the paper: `early_specialization` (a conv stem for the image) and `aux_adapter` (a
parallel conv branch with lateral adapters), both in the image tower.
"""

from __future__ import annotations

import torch

from vlp.workloads.models import clip
from vlp.workloads.models.shared_towers import check_tieable, image_blocks, text_blocks
from vlp.workloads.models.tying import tie_blocks

SHARED_PARTS = ("attn", "mlp")


def build(model_cfg: dict) -> torch.nn.Module:
    check_tieable(model_cfg, "msclip")
    model = clip.build(model_cfg)
    tie_blocks(image_blocks(model), text_blocks(model), model_cfg["vlp"].get("share_from_layer", 1), SHARED_PARTS)
    return model
