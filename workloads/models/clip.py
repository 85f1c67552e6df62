"""`arch: clip` — open_clip's CLIP with separate towers, so a vlp clip checkpoint is an open_clip checkpoint.

Only vlp-specific image options (GGeM pooling, mean pooling on a ResNet tower, MS-CLIP's conv stem or parallel
branch) swap in vlp modules; those checkpoints load into vlp, not into open_clip.
"""

from __future__ import annotations

import torch
from open_clip.model import CLIP, CustomTextCLIP

from vlp.workloads.models.pooling import SpatialPoolingHead
from vlp.workloads.models.vision_tower import VisionTower, is_vit_cfg


def build(model_cfg: dict) -> torch.nn.Module:
    options = model_cfg.get("vlp", {})
    open_clip_cfg = {key: value for key, value in model_cfg.items() if key != "vlp"}
    if "multimodal_cfg" in open_clip_cfg:
        raise ValueError("this is an open_clip CoCa config: use model.arch: coca")
    custom_text = open_clip_cfg.pop("custom_text", False)
    model = (CustomTextCLIP if custom_text else CLIP)(**open_clip_cfg, output_dict=True)
    apply_image_options(model, open_clip_cfg, options)
    return model


class OnClipBackbone(torch.nn.Module):
    """A model built around a CLIP `backbone`: the backbone's temperature (and SigLIP bias) are the model's, so the
    trainer clamps and logs `model.logit_scale` whatever the architecture."""

    backbone: torch.nn.Module

    @property
    def logit_scale(self) -> torch.nn.Parameter:
        return self.backbone.logit_scale

    @property
    def logit_bias(self):
        return self.backbone.logit_bias


def needs_vision_tower(options: dict) -> bool:
    return options.get("pooling", "cls") == "ggem" or bool(options.get("early_specialization")) or bool(options.get("aux_adapter"))


def apply_image_options(model: torch.nn.Module, open_clip_cfg: dict, options: dict) -> None:
    """Swap vlp's image modules into an open_clip model as `options` (the cfg's `vlp` entry) asks."""
    if not options:
        return
    vision_cfg = open_clip_cfg["vision_cfg"]
    embed_dim = open_clip_cfg["embed_dim"]
    pooling = options.get("pooling", "cls")
    if is_vit_cfg(vision_cfg):
        if needs_vision_tower(options):
            model.visual = VisionTower(
                embed_dim, vision_cfg, open_clip_cfg.get("quick_gelu", False), pooling, options.get("ggem"),
                bool(options.get("early_specialization")), options.get("aux_adapter"),
            )
        return
    if options.get("early_specialization") or options.get("aux_adapter"):
        raise ValueError("model.early_specialization and model.aux_adapter need a ViT image tower (a preset with patch_size)")
    if pooling != "cls":
        attnpool = model.visual.attnpool
        model.visual.attnpool = SpatialPoolingHead(
            pooling, attnpool.k_proj.in_features, attnpool.c_proj.out_features, attnpool.num_heads, options.get("ggem"),
        )
