"""What every point of the sharing spectrum needs: two towers of the same shape, so their layers can be tied."""

from __future__ import annotations

import torch
from open_clip.model import CLIPTextCfg, CLIPVisionCfg

from vlp.workloads.models.vision_tower import is_vit_cfg


def check_tieable(model_cfg: dict, arch: str) -> None:
    """Tied layers need a ViT image tower whose width, heads, depth and MLP ratio equal the text tower's."""
    if not is_vit_cfg(model_cfg["vision_cfg"]):
        raise ValueError(f"model.arch {arch} ties transformer layers: the preset needs a ViT image tower (int layers, a patch_size)")
    vision, text = CLIPVisionCfg(**model_cfg["vision_cfg"]), CLIPTextCfg(**model_cfg["text_cfg"])
    pairs = {
        "width": (vision.width, text.width),
        "heads": (vision.width // vision.head_width, text.heads),
        "layers": (vision.layers, text.layers),
        "mlp_ratio": (vision.mlp_ratio, text.mlp_ratio),
    }
    different = [f"{name} {image} vs {txt}" for name, (image, txt) in pairs.items() if image != txt]
    if different:
        raise ValueError(f"model.arch {arch} needs image and text towers of the same shape; the preset has image/text " + ", ".join(different))


def image_blocks(model: torch.nn.Module):
    return model.visual.transformer.resblocks


def text_blocks(model: torch.nn.Module):
    text = model.text if hasattr(model, "text") else model  # CustomTextCLIP keeps its text tower apart
    return text.transformer.resblocks
