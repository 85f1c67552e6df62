"""`arch: fusion` — a fusion encoder on top of unimodal towers (Dou et al., "An Empirical Study of Training End-to-End
Vision-and-Language Transformers", METER), and the building blocks `arch: flava` configures (flava.py).

The towers are the preset's: a ViT (class token + patch tokens) or open_clip's ResNet (the mean of its final feature
map, then the map's positions) for images; open_clip's text transformer for captions, here bidirectional with
padding masked out (the fusion models of these papers use BERT/RoBERTa-style encoders) and with one extra
embedding row for [MASK]. Their token sequences are projected to the fusion width, given a modality embedding, and
fused by `model.fusion.layers` layers of one of two kinds:

- `co_attention`: one stream per modality; each layer is self-attention, cross-attention to the other stream's
  input of that layer, and an MLP. The fused [CLS] is both streams' first tokens, concatenated (METER).
- `merged`: self-attention over [CLS_M; image tokens; text tokens] (METER's merged attention, FLAVA's multimodal
  encoder); the fused [CLS] is CLS_M's output.

Heads, built only for the terms whose weight is positive (so DDP never waits on an unused parameter): ITM (pooler
Linear+tanh, then 2 logits), MLM on the fused text positions and unimodal MLM on the text tower (BERT's head,
decoder tied to the token embedding), MIM on the fused image positions and unimodal MIM on the image tower (a
linear regression of each masked patch's normalised pixels, SimMIM-style: a learned mask token replaces the
masked patch embeddings in place, so the fusion layers still see every position), and patch-token alignment
(FILIP, see objectives/patch_token_alignment.py). Masks come from masking.py; ITM negatives from objectives/itm.py.
The unimodal projections and temperature are frozen when no term uses them (METER and VLC train no contrastive
head); `encode_image`/`encode_text` still answer, with those untrained projections.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.model import CLIPTextCfg, _build_text_tower, _build_vision_tower
from open_clip.transformer import LayerNorm
from torch import nn

from vlp.platform.spec.fusion import FusionOptions, MaskedModelingOptions
from vlp.workloads.models import clip
from vlp.workloads.models.masking import IGNORE_INDEX, content_positions, draw_patch_mask, mask_tokens
from vlp.workloads.models.vision_tower import VisionTower, is_vit_cfg
from vlp.workloads.objectives.gather import gather_values
from vlp.workloads.objectives.itm import draw_negatives, gather_rows, matching_labels
from vlp.workloads.objectives.mim import patchify

# What each architecture leaves unset in `model.fusion` defaults to (METER for fusion, FLAVA for flava).
ARCH_DEFAULTS = {
    "fusion": {"kind": "co_attention", "contrastive_weight": 0.0, "mim_weight": 0.0, "unimodal_mlm_weight": 0.0, "unimodal_mim_weight": 0.0, "joint_masking": False},
    "flava": {"kind": "merged", "contrastive_weight": 1.0, "mim_weight": 1.0, "unimodal_mlm_weight": 1.0, "unimodal_mim_weight": 1.0, "joint_masking": True},
}
HEAD_WIDTH = 32


@dataclass(frozen=True)
class FusionSettings:
    """`model.fusion` and `model.masked_modeling` with every architecture default filled in."""

    kind: str
    layers: int
    width: int | None
    heads: int | None
    mlp_ratio: float
    contrastive_weight: float
    itm_weight: float
    itm_negatives: str
    mlm_weight: float
    mim_weight: float
    unimodal_mlm_weight: float
    unimodal_mim_weight: float
    alignment_weight: float
    joint_masking: bool
    text_mask_probability: float
    mask_token_share: float
    random_token_share: float
    image_mask_ratio: float
    image_masking: str
    norm_pix_loss: bool

    @property
    def masks_text(self) -> bool:
        return self.mlm_weight > 0 or self.unimodal_mlm_weight > 0

    @property
    def masks_images(self) -> bool:
        return self.mim_weight > 0 or self.unimodal_mim_weight > 0

    def weights(self) -> dict[str, float]:
        """Loss term name -> weight, positive ones only (the names the objective logs as train/loss_<name>)."""
        names = ("contrastive", "itm", "mlm", "mim", "unimodal_mlm", "unimodal_mim", "alignment")
        return {name: getattr(self, f"{name}_weight") for name in names if getattr(self, f"{name}_weight") > 0}


def fusion_settings(arch: str, fusion: dict | None, masked_modeling: dict | None) -> FusionSettings:
    """The settings a `model_cfg["vlp"]` (or a ModelSection's dumps) asks for, checked against each other."""
    options = FusionOptions.model_validate(fusion or {}).model_dump()
    masked = MaskedModelingOptions.model_validate(masked_modeling or {})
    if masked.enabled:
        raise ValueError(f"model.masked_modeling.enabled applies to arch multiway; arch {arch} turns its masked terms on by model.fusion's mlm/mim weights")
    for key, value in ARCH_DEFAULTS[arch].items():
        if options[key] is None:
            options[key] = value
    if options["itm_negatives"] is None:
        options["itm_negatives"] = "hard" if options["contrastive_weight"] > 0 else "random"
    if options["itm_negatives"] == "hard" and options["contrastive_weight"] == 0 and options["itm_weight"] > 0:
        raise ValueError("model.fusion.itm_negatives hard samples from the contrastive similarities: it needs model.fusion.contrastive_weight > 0")
    masked_fields = ("text_mask_probability", "mask_token_share", "random_token_share", "image_mask_ratio", "image_masking", "norm_pix_loss")
    settings = FusionSettings(**options, **{name: getattr(masked, name) for name in masked_fields})
    if not settings.weights():
        raise ValueError("model.fusion: every loss weight is 0; give at least one term a positive weight")
    if settings.kind == "co_attention" and settings.itm_weight == 0 and not (settings.mlm_weight > 0 and settings.mim_weight > 0):
        # Each stream's last layer reaches a loss only through the fused [CLS] (ITM) or its own masked term.
        raise ValueError("model.fusion.kind co_attention with itm_weight 0 needs mlm_weight and mim_weight > 0 (else a stream's last layer trains nothing)")
    return settings


class FusedTokens(NamedTuple):
    cls: torch.Tensor
    """[B, C]: the fused [CLS] before the pooler (C = width for merged, 2 x width for co_attention)."""
    image: torch.Tensor
    """[B, T_image, width]: the fused image positions (same order as the image tower's tokens)."""
    text: torch.Tensor
    """[B, L, width]: the fused text positions."""


class FusionBlock(nn.Module):
    """Pre-norm transformer layer: self-attention, optionally cross-attention to another sequence, then an MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, cross: bool):
        super().__init__()
        self.ln_1 = LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        if cross:
            self.ln_cross = LayerNorm(width)
            self.ln_cross_kv = LayerNorm(width)
            self.cross_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None = None, other: torch.Tensor | None = None, other_padding: torch.Tensor | None = None) -> torch.Tensor:
        normed = self.ln_1(x)
        x = x + self.attn(normed, normed, normed, key_padding_mask=padding, need_weights=False)[0]
        if other is not None:
            memory = self.ln_cross_kv(other)
            x = x + self.cross_attn(self.ln_cross(x), memory, memory, key_padding_mask=other_padding, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class FusionEncoder(nn.Module):
    def __init__(self, kind: str, image_width: int, text_width: int, width: int, layers: int, heads: int, mlp_ratio: float):
        super().__init__()
        if width % heads:
            raise ValueError(f"model.fusion.width {width} must be a multiple of model.fusion.heads {heads}")
        self.kind = kind
        self.image_in = nn.Linear(image_width, width)
        self.text_in = nn.Linear(text_width, width)
        self.modality = nn.Parameter(torch.randn(2, width) * 0.02)
        if kind == "merged":
            self.cls = nn.Parameter(torch.randn(width) * 0.02)
            self.blocks = nn.ModuleList(FusionBlock(width, heads, mlp_ratio, cross=False) for _ in range(layers))
            self.ln_final = LayerNorm(width)
        elif kind == "co_attention":
            self.image_blocks = nn.ModuleList(FusionBlock(width, heads, mlp_ratio, cross=True) for _ in range(layers))
            self.text_blocks = nn.ModuleList(FusionBlock(width, heads, mlp_ratio, cross=True) for _ in range(layers))
            self.ln_image = LayerNorm(width)
            self.ln_text = LayerNorm(width)
        else:
            raise ValueError(f"model.fusion.kind {kind!r}: expected co_attention or merged")
        self.cls_width = width if kind == "merged" else 2 * width

    def forward(self, image_tokens: torch.Tensor, text_tokens: torch.Tensor, text_padding: torch.Tensor) -> FusedTokens:
        images = self.image_in(image_tokens) + self.modality[0]
        texts = self.text_in(text_tokens) + self.modality[1]
        if self.kind == "co_attention":
            for image_block, text_block in zip(self.image_blocks, self.text_blocks):
                images, texts = image_block(images, None, texts, text_padding), text_block(texts, text_padding, images, None)
            images, texts = self.ln_image(images), self.ln_text(texts)
            return FusedTokens(torch.cat([images[:, 0], texts[:, 0]], dim=-1), images, texts)
        batch, image_length = images.shape[:2]
        x = torch.cat([self.cls.expand(batch, 1, -1), images, texts], dim=1)
        padding = torch.cat([text_padding.new_zeros(batch, 1 + image_length), text_padding], dim=1)
        for block in self.blocks:
            x = block(x, padding)
        x = self.ln_final(x)
        return FusedTokens(x[:, 0], x[:, 1 : 1 + image_length], x[:, 1 + image_length :])


class TiedVocabularyHead(nn.Module):
    """BERT's prediction head: dense + GELU + LayerNorm to the token-embedding width, then the (tied) token
    embedding's transpose plus a bias. The embedding is passed in, so the head owns no copy of it."""

    def __init__(self, width: int, text_width: int, vocab_size: int):
        super().__init__()
        self.dense = nn.Linear(width, text_width)
        self.norm = LayerNorm(text_width)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        self.vocab_size = vocab_size

    def forward(self, hidden: torch.Tensor, token_embedding: torch.Tensor) -> torch.Tensor:
        return F.linear(self.norm(F.gelu(self.dense(hidden))), token_embedding[: self.vocab_size], self.bias)


@contextmanager
def patches_replaced(visual: nn.Module, patch_mask: torch.Tensor | None, mask_token: torch.Tensor | None):
    """While inside, a ViT tower's patch embeddings at `patch_mask` [B, P] (True = masked) are `mask_token`.

    The token replaces them where the patch embedding is made (conv1, or MS-CLIP's stem), so the class token,
    positions, the conv branch and every layer after run as they always do (SimMIM, BEiT)."""
    if patch_mask is None:
        yield
        return
    grid_mask = patch_mask.reshape(patch_mask.shape[0], 1, *visual.grid_size)
    token = mask_token.view(1, -1, 1, 1)
    hook = visual.conv1.register_forward_hook(lambda module, inputs, output: torch.where(grid_mask, token.to(output.dtype), output))
    try:
        yield
    finally:
        hook.remove()


class ImageTower(nn.Module):
    """The preset's image tower as (pooled embedding [B, E], tokens [B, T, width]); a ViT's masked patches take a
    learned mask token (when `maskable`)."""

    def __init__(self, model_cfg: dict, options: dict, maskable: bool = False):
        super().__init__()
        vision_cfg = model_cfg["vision_cfg"]
        embed_dim, quick_gelu = model_cfg["embed_dim"], model_cfg.get("quick_gelu", False)
        self.is_vit = is_vit_cfg(vision_cfg)
        if self.is_vit:
            self.visual = VisionTower(
                embed_dim, vision_cfg, quick_gelu, options.get("pooling", "cls"), options.get("ggem"),
                bool(options.get("early_specialization")), options.get("aux_adapter"),
            )
            self.width = self.visual.transformer.width
            self.patch_size = self.visual.patch_size[0]
            self.mask_token = nn.Parameter(torch.randn(self.width) * 0.02) if maskable else None
        else:
            self.visual = _build_vision_tower(embed_dim, vision_cfg, quick_gelu)
            clip.apply_image_options(self, {"vision_cfg": vision_cfg, "embed_dim": embed_dim}, options)
            self.width = vision_cfg["width"] * 32  # ModifiedResNet's last stage: 8 x width channels x expansion 4
            self.patch_size = None
            self.mask_token = None

    def embedding_parameters(self) -> list[nn.Parameter]:
        """What only the pooled embedding uses (frozen when no loss term needs it)."""
        if self.is_vit:
            return [self.visual.proj, *self.visual.pool.parameters()]
        return list(self.visual.attnpool.parameters())

    def forward(self, images: torch.Tensor, patch_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_vit:
            visual = self.visual
            feature_map = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(images)))))
            positions = feature_map.flatten(2).transpose(1, 2)
            return visual.attnpool(feature_map), torch.cat([positions.mean(dim=1, keepdim=True), positions], dim=1)
        with patches_replaced(self.visual, patch_mask, self.mask_token):
            tokens = self.visual.forward_tokens(images)
        return self.visual.pool(tokens) @ self.visual.proj, tokens


class TextTower(nn.Module):
    """open_clip's text transformer, bidirectional with padding masked out, plus a [MASK] embedding row (id =
    vocab_size): (pooled embedding [B, E], tokens [B, L, width])."""

    def __init__(self, model_cfg: dict):
        super().__init__()
        text_cfg = dict(model_cfg["text_cfg"])
        if text_cfg.get("hf_model_name") or text_cfg.get("embed_cls"):
            raise ValueError("the fusion architectures build open_clip's own text transformer: the preset's text_cfg may not set hf_model_name or embed_cls")
        self.vocab_size = text_cfg.get("vocab_size", CLIPTextCfg.vocab_size)
        cfg = CLIPTextCfg(**{**text_cfg, "vocab_size": self.vocab_size + 1, "no_causal_mask": True, "output_tokens": True})
        self.tower = _build_text_tower(model_cfg["embed_dim"], cfg, model_cfg.get("quick_gelu", False))
        self.tower.use_pad_mask = True  # open_clip's _embeds reads this: keys at padding are masked out
        self.mask_id = self.vocab_size
        self.pad_id = cfg.pad_id
        self.width = cfg.width

    @property
    def token_embedding(self) -> torch.Tensor:
        return self.tower.token_embedding.weight

    def embedding_parameters(self) -> list[nn.Parameter]:
        projection = self.tower.text_projection
        return list(projection.parameters()) if isinstance(projection, nn.Module) else [projection]

    def forward(self, texts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tower(texts)


class FusionModel(nn.Module):
    accumulable = False  # its terms are not split exactly over micro-batches (train.accum_steps is refused)

    def __init__(self, model_cfg: dict):
        super().__init__()
        options = model_cfg.get("vlp", {})
        arch = options.get("arch", "fusion")
        settings = fusion_settings(arch, options.get("fusion"), options.get("masked_modeling"))
        self.settings = settings
        self.image = ImageTower(model_cfg, options, maskable=settings.masks_images)
        if settings.masks_images and not self.image.is_vit:
            raise ValueError(f"model.fusion.mim_weight and unimodal_mim_weight need a ViT image tower (patches to mask); arch {arch}'s preset has a ResNet image tower: set them to 0 or use a ViT preset")
        if settings.alignment_weight > 0 and not self.image.is_vit:
            raise ValueError("model.fusion.alignment_weight aligns patches with tokens: it needs a ViT image tower")
        self.text = TextTower(model_cfg)
        width = settings.width or self.text.width
        heads = settings.heads or max(1, width // HEAD_WIDTH)
        self.fusion = FusionEncoder(settings.kind, self.image.width, self.text.width, width, settings.layers, heads, settings.mlp_ratio)
        self.logit_scale = nn.Parameter(torch.tensor(float(model_cfg.get("init_logit_scale", np.log(1 / 0.07)))))
        bias = model_cfg.get("init_logit_bias")  # SigLIP's, when `objective.contrastive: siglip`
        self.logit_bias = nn.Parameter(torch.tensor(float(bias))) if bias is not None else None
        patch_pixels = self.image.patch_size**2 * 3 if self.image.is_vit else 0
        self.pooler = nn.Sequential(nn.Linear(self.fusion.cls_width, width), nn.Tanh()) if settings.itm_weight > 0 else None
        self.itm_head = nn.Linear(width, 2) if settings.itm_weight > 0 else None
        self.mlm_head = TiedVocabularyHead(width, self.text.width, self.text.vocab_size) if settings.mlm_weight > 0 else None
        self.unimodal_mlm_head = TiedVocabularyHead(self.text.width, self.text.width, self.text.vocab_size) if settings.unimodal_mlm_weight > 0 else None
        self.mim_head = nn.Linear(width, patch_pixels) if settings.mim_weight > 0 else None
        self.unimodal_mim_head = nn.Linear(self.image.width, patch_pixels) if settings.unimodal_mim_weight > 0 else None
        embed_dim = model_cfg["embed_dim"]
        self.alignment_image = nn.Linear(self.image.width, embed_dim) if settings.alignment_weight > 0 else None
        self.alignment_text = nn.Linear(self.text.width, embed_dim) if settings.alignment_weight > 0 else None
        # DDP waits for a gradient of every trainable parameter: freeze what no term reaches.
        if settings.contrastive_weight == 0:
            for parameter in [*self.image.embedding_parameters(), *self.text.embedding_parameters()]:
                parameter.requires_grad_(False)
            if self.logit_bias is not None:
                self.logit_bias.requires_grad_(False)
            if settings.alignment_weight == 0:
                self.logit_scale.requires_grad_(False)

    # Unimodal towers (dual-encoder use: zero-shot, retrieval, linear probe).
    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        pooled, _ = self.image(images)
        return F.normalize(pooled, dim=-1) if normalize else pooled

    def encode_text(self, texts: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        pooled, _ = self.text(texts)
        return F.normalize(pooled, dim=-1) if normalize else pooled

    def padding(self, texts: torch.Tensor) -> torch.Tensor:
        return texts == self.text.pad_id

    def pooled_cls(self, fused: FusedTokens) -> torch.Tensor:
        return self.pooler(fused.cls) if self.pooler is not None else fused.cls

    def fused_cls(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        """[B, D] fused representation of row-aligned pairs (D = fusion width; 2 x width for co_attention
        without an ITM pooler)."""
        _, image_tokens = self.image(images)
        _, text_tokens = self.text(texts)
        return self.pooled_cls(self.fusion(image_tokens, text_tokens, self.padding(texts)))

    def itm_logits(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        """[B] log-odds that row-aligned image and text match."""
        if self.itm_head is None:
            raise ValueError("this model has no ITM head (model.fusion.itm_weight was 0)")
        logits = self.itm_head(self.fused_cls(images, texts))
        return logits[:, 1] - logits[:, 0]

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> dict:
        settings = self.settings
        padding = self.padding(texts)
        image_pooled, image_tokens = self.image(images)
        text_pooled, text_tokens = self.text(texts)
        outputs = {
            "image_features": F.normalize(image_pooled, dim=-1),
            "text_features": F.normalize(text_pooled, dim=-1),
            "logit_scale": self.logit_scale.exp(),
        }
        if self.logit_bias is not None:
            outputs["logit_bias"] = self.logit_bias
        if self.itm_head is not None:
            outputs.update(self._matching(texts, padding, image_tokens, text_tokens, outputs))
        if settings.masks_text:
            masked_text = mask_tokens(
                texts, content_positions(texts, self.text.pad_id), settings.text_mask_probability, self.text.mask_id,
                self.text.vocab_size, settings.mask_token_share, settings.random_token_share,
            )
            _, masked_text_tokens = self.text(masked_text.ids)
            predicted = masked_text.labels != IGNORE_INDEX
            if self.unimodal_mlm_head is not None:
                outputs["unimodal_mlm_logits"] = self.unimodal_mlm_head(masked_text_tokens[predicted], self.text.token_embedding)
                outputs["unimodal_mlm_labels"] = masked_text.labels[predicted]
        if settings.masks_images:
            patch_mask = draw_patch_mask(settings.image_masking, images.shape[0], tuple(self.image.visual.grid_size), settings.image_mask_ratio, images.device)
            _, masked_image_tokens = self.image(images, patch_mask)
            masked_patches = patchify(images, self.image.patch_size)[patch_mask]
            if self.unimodal_mim_head is not None:
                outputs["unimodal_mim_predictions"] = self.unimodal_mim_head(masked_image_tokens[:, 1:][patch_mask])
                outputs["unimodal_mim_patches"] = masked_patches
        if self.mlm_head is not None or self.mim_head is not None:
            if settings.joint_masking:
                # FLAVA's masked multimodal modeling: both modalities masked in one fused pass.
                fused = self.fusion(
                    masked_image_tokens if settings.masks_images else image_tokens,
                    masked_text_tokens if settings.masks_text else text_tokens, padding,
                )
                fused_for_text = fused_for_image = fused
            else:
                # One pass per masked modality, the other one whole (METER's MLM, VLC's MLM and MIM).
                fused_for_text = self.fusion(image_tokens, masked_text_tokens, padding) if self.mlm_head is not None else None
                fused_for_image = self.fusion(masked_image_tokens, text_tokens, padding) if self.mim_head is not None else None
            if self.mlm_head is not None:
                outputs["mlm_logits"] = self.mlm_head(fused_for_text.text[predicted], self.text.token_embedding)
                outputs["mlm_labels"] = masked_text.labels[predicted]
            if self.mim_head is not None:
                outputs["mim_predictions"] = self.mim_head(fused_for_image.image[:, 1:][patch_mask])
                outputs["mim_patches"] = masked_patches
        if self.alignment_image is not None:
            outputs["alignment_patches"] = F.normalize(self.alignment_image(image_tokens[:, 1:]), dim=-1)
            outputs["alignment_tokens"] = F.normalize(self.alignment_text(text_tokens), dim=-1)
            outputs["alignment_token_mask"] = content_positions(texts, self.text.pad_id)
        return outputs

    def _matching(self, texts, padding, image_tokens, text_tokens, outputs) -> dict:
        """ITM logits of this process's positives, then (image, negative text), then (negative image, text)."""
        if self.settings.itm_negatives == "hard":
            text_for_image, image_for_text = draw_negatives(texts, outputs["image_features"], outputs["text_features"], outputs["logit_scale"])
        else:
            text_for_image, image_for_text = draw_negatives(texts)
        negative_texts = gather_rows(text_tokens, text_for_image)
        negative_padding = gather_values(padding.long()).bool()[text_for_image]
        negative_images = gather_rows(image_tokens, image_for_text)
        fused = self.fusion(
            torch.cat([image_tokens, image_tokens, negative_images]),
            torch.cat([text_tokens, negative_texts, text_tokens]),
            torch.cat([padding, negative_padding, padding]),
        )
        return {"itm_logits": self.itm_head(self.pooled_cls(fused)), "itm_labels": matching_labels(texts.shape[0], texts.device)}

def build(model_cfg: dict) -> FusionModel:
    return FusionModel(model_cfg)


