"""vlp's ViT image tower: open_clip's VisionTransformer (same parameter names, so weights move between the two)
plus what open_clip lacks: GGeM pooling, MS-CLIP's early-specialization conv stem and its parallel conv branch.

`clip` with `cls`/`mean` pooling and no MS-CLIP option keeps open_clip's own tower; every other ViT tower is this.
"""

from __future__ import annotations

from functools import partial

import torch
from open_clip.model import CLIPVisionCfg
from open_clip.transformer import LayerNorm, QuickGELU, VisionTransformer
from torch import nn

from vlp.workloads.models.aux_adapter import AuxConvBranch
from vlp.workloads.models.conv_stem import ConvStem
from vlp.workloads.models.pooling import TokenPooling

UNSUPPORTED = ("timm_model_name", "attentional_pool")


class VisionTower(VisionTransformer):
    def __init__(
        self,
        embed_dim: int,
        vision_cfg: dict,
        quick_gelu: bool = False,
        pooling: str = "cls",
        ggem: dict | None = None,
        early_specialization: bool = False,
        aux_adapter: dict | None = None,
        output_tokens: bool = False,
    ):
        cfg = CLIPVisionCfg(**vision_cfg)
        if not is_vit_cfg(vision_cfg) or any(getattr(cfg, key) for key in UNSUPPORTED):
            raise ValueError("this image tower is a ViT: the preset's vision_cfg needs an int `layers` and a `patch_size`")
        act_layer = QuickGELU if quick_gelu else nn.GELU
        if cfg.act_kwargs is not None:
            act_layer = partial(act_layer, **cfg.act_kwargs)
        norm_layer = partial(LayerNorm, **cfg.norm_kwargs) if cfg.norm_kwargs else LayerNorm
        heads = cfg.width // cfg.head_width
        super().__init__(
            image_size=cfg.image_size, patch_size=cfg.patch_size, width=cfg.width, layers=cfg.layers, heads=heads,
            mlp_ratio=cfg.mlp_ratio, ls_init_value=cfg.ls_init_value, patch_dropout=cfg.patch_dropout,
            no_ln_pre=cfg.no_ln_pre, pos_embed_type=cfg.pos_embed_type, output_dim=embed_dim, act_layer=act_layer,
            norm_layer=norm_layer, block_type=cfg.block_type, qk_norm=cfg.qk_norm, scaled_cosine_attn=cfg.scaled_cosine_attn,
            scale_heads=cfg.scale_heads, scale_attn_inner=cfg.scale_attn_inner, scale_attn=cfg.scale_attn, scale_fc=cfg.scale_fc,
        )
        self.heads = heads
        self.output_tokens = output_tokens
        if early_specialization:
            # _embeds() calls self.conv1 and flattens its grid: the stem is a drop-in replacement.
            self.conv1 = ConvStem(cfg.width, cfg.patch_size)
        self.pool = TokenPooling(pooling, cfg.width, heads, ggem)
        self.aux = None
        if aux_adapter:
            layers = tuple(aux_adapter.get("layers", (1,)))
            if max(layers) >= cfg.layers:
                raise ValueError(f"model.aux_adapter.layers {list(layers)}: the image tower has layers 0..{cfg.layers - 1}")
            self.aux = AuxConvBranch(cfg.width, cfg.patch_size, layers, aux_adapter.get("channels", 32))

    def forward_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, 1 + P, width]: the class token then the patch tokens, after the final LayerNorm."""
        x = self._embeds(images)
        if self.aux is None:
            x = self.transformer(x)
        else:
            additions = self.aux(images)
            for index, block in enumerate(self.transformer.resblocks):
                if index in additions:
                    x = torch.cat([x[:, :1], x[:, 1:] + additions[index].to(x.dtype)], dim=1)
                x = block(x)
        return self.ln_post(x)

    def forward(self, images: torch.Tensor):
        tokens = self.forward_tokens(images)
        pooled = self.pool(tokens) @ self.proj
        return (pooled, tokens) if self.output_tokens else pooled


def is_vit_cfg(vision_cfg: dict) -> bool:
    return isinstance(vision_cfg.get("layers", 12), int) and vision_cfg.get("patch_size", 16) is not None and not vision_cfg.get("timm_model_name")


def vit_tokens(visual: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Token sequence after the final LayerNorm of an open_clip ViT tower or a VisionTower: [B, 1 + P, width]."""
    if isinstance(visual, VisionTower):
        return visual.forward_tokens(images)
    if not isinstance(visual, VisionTransformer):
        raise TypeError(f"patch tokens need a ViT image tower, not {type(visual).__name__}")
    if visual.attn_pool is not None or visual.final_ln_after_pool:
        raise ValueError("patch tokens need a ViT tower without attentional pooling or final_ln_after_pool")
    return visual.ln_post(visual.transformer(visual._embeds(images)))


def pool_tokens(visual: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """The tower's pooled, projected embedding from `vit_tokens` output, without running the tower again."""
    if isinstance(visual, VisionTower):
        return visual.pool(tokens) @ visual.proj
    pooled, _ = visual._global_pool(tokens)
    return pooled @ visual.proj
