"""The trainable student: a copy of the pretrained VL model's image tower that can take one extra token.

InDiGo injects the frozen VL image feature (projected to the tower's width) into the student's attention:
- a ViT tower gets it appended to its token sequence before the transformer (it is dropped again before
  pooling, so pooling is unchanged and the feature reaches the output only through attention);
- a ModifiedResNet tower gets it as an extra key/value of its attention pool, the one place that tower
  attends over tokens.
Without an injected feature the student is exactly the tower (what ERM fine-tunes).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import VisionTransformer
from torch import nn


class StudentEncoder(nn.Module):
    def __init__(self, visual: nn.Module, inject_dim: int | None = None):
        super().__init__()
        self.visual = copy.deepcopy(visual)
        if isinstance(self.visual, ModifiedResNet):
            self.kind, width = "resnet", self.visual.attnpool.k_proj.in_features
        elif isinstance(self.visual, VisionTransformer) and getattr(self.visual, "aux", None) is None and self.visual.attn_pool is None:
            self.kind, width = "vit", self.visual.transformer.width
        else:
            self.kind, width = "other", None
        if inject_dim is not None and width is None:
            raise ValueError(f"InDiGo injects a token into a ViT or ModifiedResNet image tower, not {type(visual).__name__}")
        self.inject = nn.Linear(inject_dim, width) if inject_dim is not None else None

    def forward(self, images: torch.Tensor, injected: torch.Tensor | None = None) -> torch.Tensor:
        if self.inject is None:
            return self.visual(images)
        return self.with_token(images, self.inject(injected) if injected is not None else None)

    def with_token(self, images: torch.Tensor, token: torch.Tensor | None) -> torch.Tensor:
        """The tower's forward pass re-spelt with a place for the token; with `token=None` it is the tower's own."""
        return self._vit_with_token(images, token) if self.kind == "vit" else self._resnet_with_token(images, token)

    def _vit_with_token(self, images: torch.Tensor, token: torch.Tensor | None) -> torch.Tensor:
        from vlp.workloads.models.vision_tower import pool_tokens

        visual = self.visual
        x = visual._embeds(images)  # class + patch tokens, after ln_pre
        if token is not None:
            x = torch.cat([x, visual.ln_pre(token)[:, None]], dim=1)
        x = visual.ln_post(visual.transformer(x))
        return pool_tokens(visual, x[:, :-1] if token is not None else x)

    def _resnet_with_token(self, images: torch.Tensor, token: torch.Tensor | None) -> torch.Tensor:
        visual = self.visual
        x = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(images)))))
        pool = visual.attnpool
        # As open_clip's AttentionPool2d: the mean token queries the positioned grid; here one more key/value.
        x = x.flatten(2).permute(2, 0, 1)
        x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0) + pool.positional_embedding[:, None, :].to(x.dtype)
        if token is not None:
            x = torch.cat([x, token[None].to(x.dtype)], dim=0)
        out, _ = F.multi_head_attention_forward(
            query=x[:1], key=x, value=x, embed_dim_to_check=x.shape[-1], num_heads=pool.num_heads,
            q_proj_weight=pool.q_proj.weight, k_proj_weight=pool.k_proj.weight, v_proj_weight=pool.v_proj.weight,
            in_proj_weight=None, in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
            bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
            out_proj_weight=pool.c_proj.weight, out_proj_bias=pool.c_proj.bias,
            use_separate_proj_weight=True, training=self.training, need_weights=False,
        )
        return out[0]
