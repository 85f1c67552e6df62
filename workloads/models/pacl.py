"""`arch: pacl` — Patch Aligned Contrastive Learning (Mukhoti et al., "Open Vocabulary Semantic Segmentation with
Patch Aligned Contrastive Learning").

A CLIP backbone (open_clip's CLIP with a ViT image tower, optionally frozen and loaded through `init_from`) gives
patch tokens in the embedding space; a small residual MLP embeds each patch (its last layer starts at zero, so
training starts from the backbone's own patch embeddings). The compatibility of image x and text y is

    s_p = cos(v_p(x), t(y))                         for each patch p
    a   = softmax_p(s / patch_temperature)
    phi = cos(sum_p a_p v_p(x), t(y))

so every text pools the image its own way. `patch_text_similarity` returns the per-patch cosines as maps
(zero-shot segmentation); `encode_image` is the backbone's pooled embedding (text-agnostic, for the standard
zero-shot and retrieval evaluation); `image_text_logits` scores images against texts with phi.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer
from torch import nn

from vlp.workloads.models import clip
from vlp.workloads.models.vision_tower import pool_tokens, vit_tokens


class ResidualMLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(F.gelu(self.fc1(x)))


def pacl_compatibility(patches: torch.Tensor, texts: torch.Tensor, temperature: float) -> torch.Tensor:
    """phi for every (image, text): `patches` [N, P, E] and `texts` [M, E], both L2-normalised -> [N, M] cosines."""
    similarity = torch.einsum("npe,me->nmp", patches, texts)
    weights = torch.softmax(similarity / temperature, dim=-1)
    pooled = F.normalize(torch.einsum("nmp,npe->nme", weights, patches), dim=-1)
    return (pooled * texts.unsqueeze(0)).sum(dim=-1)


class PaclModel(clip.OnClipBackbone):
    def __init__(self, model_cfg: dict):
        super().__init__()
        options = model_cfg.get("vlp", {})
        settings = options.get("pacl") or {}
        backbone_options = {key: options[key] for key in ("pooling", "ggem") if key in options}
        self.backbone = clip.build({**{k: v for k, v in model_cfg.items() if k != "vlp"}, "vlp": backbone_options})
        if not isinstance(self.backbone.visual, VisionTransformer):
            raise ValueError("model.arch pacl needs a CLIP backbone with a ViT image tower (patch tokens)")
        embed_dim = model_cfg["embed_dim"]
        self.patch_embedder = ResidualMLP(embed_dim, settings.get("embedder_hidden") or 2 * embed_dim)
        self.patch_temperature = float(settings.get("patch_temperature", 0.1))
        self.grid_size = tuple(self.backbone.visual.grid_size)

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return self.backbone.encode_image(images, normalize=normalize)

    def encode_text(self, texts: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return self.backbone.encode_text(texts, normalize=normalize)

    def _tokens_and_patches(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = vit_tokens(self.backbone.visual, images)
        patches = self.patch_embedder(tokens[:, 1:] @ self.backbone.visual.proj)
        return tokens, F.normalize(patches, dim=-1)

    def encode_patches(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, P, E] L2-normalised patch embeddings (row-major over the patch grid)."""
        return self._tokens_and_patches(images)[1]

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> dict:
        tokens, patches = self._tokens_and_patches(images)
        outputs = {
            "image_patches": patches,
            "image_features": F.normalize(pool_tokens(self.backbone.visual, tokens), dim=-1),
            "text_features": self.backbone.encode_text(texts, normalize=True),
            "logit_scale": self.backbone.logit_scale.exp(),
        }
        if self.backbone.logit_bias is not None:
            outputs["logit_bias"] = self.backbone.logit_bias
        return outputs

    @torch.no_grad()
    def image_text_logits(self, images: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """PACL's compatibility phi: [B, T] cosines of images against (any-norm) text embeddings [T, E]."""
        return pacl_compatibility(self.encode_patches(images), F.normalize(text_features, dim=-1), self.patch_temperature)

    @torch.no_grad()
    def patch_text_similarity(self, images: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """Per-patch cosine similarity maps: images [B, 3, H, W], text_features [T, E] -> [B, T, H', W'] with
        (H', W') = `grid_size` (image side / patch size); upsample to pixels for segmentation."""
        patches = self.encode_patches(images)
        similarity = torch.einsum("bpe,te->btp", patches, F.normalize(text_features, dim=-1))
        return similarity.reshape(images.shape[0], text_features.shape[0], *self.grid_size)


def build(model_cfg: dict) -> PaclModel:
    return PaclModel(model_cfg)
