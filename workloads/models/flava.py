"""`arch: flava` — FLAVA (Singh et al., "FLAVA: A Foundational Language And Vision Alignment Model") as a
configuration of the fusion building blocks (fusion.py): unimodal image and text encoders (the preset's towers),
a merged multimodal encoder with its own [CLS], and FLAVA's losses by default: global contrastive on the unimodal
embeddings, ITM with hard negatives on the multimodal [CLS], MLM on the text encoder, MIM on the image encoder
(normalised-pixel regression of masked patches instead of FLAVA's dVAE tokens: no tokenizer weights can be
downloaded), and masked multimodal modeling (image and text masked together, both predicted from the multimodal
encoder). Every default can be changed under `model.fusion` (fusion.ARCH_DEFAULTS["flava"])."""

from __future__ import annotations

from vlp.workloads.models.fusion import FusionModel


def build(model_cfg: dict) -> FusionModel:
    return FusionModel({**model_cfg, "vlp": {**model_cfg.get("vlp", {}), "arch": "flava"}})
