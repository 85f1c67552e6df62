"""`arch: multiway` — the Multiway transformer of VLMo / BEiT-3 used as two towers: every layer's self-attention
is shared between the modalities, and each modality keeps its own FFN (its "expert") and its own LayerNorms.

Run as a dual encoder (each modality passes through the shared attention with its own expert), which is how VLMo
scores retrieval. `share.from_layer` (default 0: all layers) leaves lower layers fully modality-specific.

With `model.masked_modeling.enabled` it trains BEiT-3's masked data modeling (Wang et al., "Image as a Foreign
Language: BEiT Pretraining for All Vision and Vision-Language Tasks") instead of (or beside, `contrastive_weight`)
the contrastive loss, on three kinds of input made from each image-caption pair:
- the image alone, with masked patches (a learned mask token in place, SimMIM/BEiT-style), predicting the masked
  patches' normalised pixels (BEiT-3 predicts VQ-KD codes; no tokenizer weights can be had here);
- the caption alone, BERT-masked, predicting the masked tokens (decoder tied to the token embedding);
- the pair: image and caption tokens concatenated through every layer's shared attention (padding masked out),
  each position through its modality's FFN, except in the top `vl_expert_layers` layers, where every position of
  the pair goes through one vision-language FFN expert (BEiT-3's VL-FFN); both heads predict from the pair.
The text tower becomes bidirectional with padding masked out (BEiT-3's is; MLM needs the right context), and gets
one extra embedding row for [MASK]. The masks are drawn once per step and shared by the three inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.transformer import LayerNorm, ResidualAttentionBlock, text_global_pool
from torch import nn

from vlp.platform.spec.fusion import MaskedModelingOptions
from vlp.workloads.models import clip
from vlp.workloads.models.fusion import TiedVocabularyHead, patches_replaced
from vlp.workloads.models.masking import IGNORE_INDEX, content_positions, draw_patch_mask, mask_tokens
from vlp.workloads.models.shared_towers import check_tieable, image_blocks, text_blocks
from vlp.workloads.models.tying import tie_blocks
from vlp.workloads.models.vision_tower import pool_tokens, vit_tokens
from vlp.workloads.objectives.mim import patchify

SHARED_PARTS = ("attn",)


def build(model_cfg: dict) -> torch.nn.Module:
    masked = (model_cfg.get("vlp") or {}).get("masked_modeling")
    if masked and masked.get("enabled"):
        return MultiwayMaskedModel(model_cfg)
    return build_towers(model_cfg)


def build_towers(model_cfg: dict) -> torch.nn.Module:
    check_tieable(model_cfg, "multiway")
    model = clip.build(model_cfg)
    tie_blocks(image_blocks(model), text_blocks(model), model_cfg["vlp"].get("share_from_layer", 0), SHARED_PARTS)
    return model


def masked_modeling_weights(masked_modeling: dict) -> dict[str, float]:
    """BEiT-3's loss terms (names as the objective logs them) -> weight, positive ones only."""
    options = MaskedModelingOptions.model_validate(masked_modeling)
    if not options.enabled:
        raise ValueError("model.masked_modeling on arch multiway: set model.masked_modeling.enabled: true to train BEiT-3's masked data modeling")
    weights = {
        "contrastive": options.contrastive_weight,
        "image_mim": options.image_weight,
        "text_mlm": options.text_weight,
        "pair_mlm": options.pair_weight,
        "pair_mim": options.pair_weight,
    }
    weights = {name: weight for name, weight in weights.items() if weight > 0}
    if not weights:
        raise ValueError("model.masked_modeling: every loss weight is 0; give at least one term a positive weight")
    return weights


class VisionLanguageExpert(nn.Module):
    """BEiT-3's VL-FFN: one pre-norm MLP for every position of a pair."""

    def __init__(self, width: int, mlp_ratio: float):
        super().__init__()
        self.ln = LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.ln(x))


class MultiwayMaskedModel(nn.Module):
    accumulable = False  # its terms are not split exactly over micro-batches (train.accum_steps is refused)

    def __init__(self, model_cfg: dict):
        super().__init__()
        options = model_cfg["vlp"]
        if options.get("aux_adapter"):
            raise ValueError("model.aux_adapter does not apply to masked data modeling on arch multiway")
        self.options = MaskedModelingOptions.model_validate(options["masked_modeling"])
        self.weights = masked_modeling_weights(options["masked_modeling"])
        text_cfg = model_cfg["text_cfg"]
        self.vocab_size = text_cfg.get("vocab_size", 49408)
        self.mask_id = self.vocab_size
        self.pad_id = text_cfg.get("pad_id", 0)
        # One more embedding row for [MASK]; bidirectional text attention (padding is masked per batch below).
        towers_cfg = {**model_cfg, "text_cfg": {**text_cfg, "vocab_size": self.vocab_size + 1, "no_causal_mask": True}}
        self.backbone = build_towers(towers_cfg)
        for block in [*image_blocks(self.backbone), *text_blocks(self.backbone)]:
            if not isinstance(block, ResidualAttentionBlock) or not block.attn.batch_first:
                raise ValueError("masked data modeling on arch multiway needs open_clip's default (batch-first) transformer blocks")
        visual = self.backbone.visual
        width = visual.transformer.width
        self.heads = self.backbone.transformer.resblocks[0].attn.num_heads
        self.patch_size = visual.patch_size[0]
        # Heads only for the terms that train them (DDP waits for a gradient of every trainable parameter).
        predicts_images = {"image_mim", "pair_mim"} & set(self.weights)
        self.mask_token = nn.Parameter(torch.randn(width) * 0.02) if predicts_images else None
        self.mim_head = nn.Linear(width, self.patch_size**2 * 3) if predicts_images else None
        self.mlm_head = TiedVocabularyHead(width, width, self.vocab_size) if {"text_mlm", "pair_mlm"} & set(self.weights) else None
        layers = len(image_blocks(self.backbone))
        if self.options.vl_expert_layers > layers:
            raise ValueError(f"model.masked_modeling.vl_expert_layers {self.options.vl_expert_layers}: the towers have {layers} layers")
        experts = self.options.vl_expert_layers if self.options.pair_weight > 0 else 0
        mlp_ratio = model_cfg["vision_cfg"].get("mlp_ratio", 4.0)
        self.vl_experts = nn.ModuleList(VisionLanguageExpert(width, mlp_ratio) for _ in range(experts))
        self.first_vl_layer = layers - experts
        # Without the contrastive term nothing reaches the projections and the temperature.
        if self.options.contrastive_weight == 0:
            frozen = [visual.proj, self.backbone.text_projection, self.backbone.logit_scale]
            frozen += list(getattr(visual, "pool", nn.Module()).parameters())
            if self.backbone.logit_bias is not None:
                frozen.append(self.backbone.logit_bias)
            for parameter in frozen:
                parameter.requires_grad_(False)

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.backbone.logit_scale

    @property
    def logit_bias(self):
        return self.backbone.logit_bias

    def _padding_mask(self, padding: torch.Tensor, queries: int) -> torch.Tensor:
        """Additive [B * heads, queries, keys] mask that hides the padding keys (open_clip's blocks take a float mask)."""
        additive = torch.zeros(padding.shape[0], queries, padding.shape[1], device=padding.device)
        additive.masked_fill_(padding[:, None, :], float("-inf"))
        return additive.repeat_interleave(self.heads, dim=0)

    def _text_embeds(self, texts: torch.Tensor) -> torch.Tensor:
        return self.backbone.token_embedding(texts) + self.backbone.positional_embedding[: texts.shape[1]]

    def text_tokens(self, texts: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        x = self.backbone.transformer(self._text_embeds(texts), attn_mask=self._padding_mask(padding, texts.shape[1]))
        return self.backbone.ln_final(x)

    def _text_pooled(self, tokens: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        pooled = text_global_pool(tokens, texts, self.backbone.text_pool_type, eos_token_id=getattr(self.backbone, "text_eos_id", None))
        return pooled @ self.backbone.text_projection

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return self.backbone.encode_image(images, normalize=normalize)

    def encode_text(self, texts: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        pooled = self._text_pooled(self.text_tokens(texts, texts == self.pad_id), texts)
        return F.normalize(pooled, dim=-1) if normalize else pooled

    def pair_tokens(self, images: torch.Tensor, texts: torch.Tensor, padding: torch.Tensor, patch_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Image and caption through the multiway layers as one sequence: ([B, 1+P, W] image, [B, L, W] text)."""
        visual = self.backbone.visual
        with patches_replaced(visual, patch_mask, self.mask_token):
            image = visual._embeds(images)
        text = self._text_embeds(texts)
        image_length = image.shape[1]
        keys = torch.cat([padding.new_zeros(padding.shape[0], image_length), padding], dim=1)
        mask = self._padding_mask(keys, keys.shape[1])
        for index, (image_block, text_block) in enumerate(zip(image_blocks(self.backbone), text_blocks(self.backbone))):
            if image_block.attn is text_block.attn:
                normed = torch.cat([image_block.ln_1(image), text_block.ln_1(text)], dim=1)
                attended = image_block.attn(normed, normed, normed, need_weights=False, attn_mask=mask)[0]
                image = image + image_block.ls_1(attended[:, :image_length])
                text = text + text_block.ls_1(attended[:, image_length:])
            else:
                # Below `share.from_layer` the towers are separate: each modality attends within itself.
                image = image + image_block.ls_1(image_block.attention(image_block.ln_1(image)))
                text = text + text_block.ls_1(text_block.attention(text_block.ln_1(text), attn_mask=self._padding_mask(padding, text.shape[1])))
            if index >= self.first_vl_layer:
                joint = self.vl_experts[index - self.first_vl_layer](torch.cat([image, text], dim=1))
                image, text = joint[:, :image_length], joint[:, image_length:]
            else:
                image = image + image_block.ls_2(image_block.mlp(image_block.ln_2(image)))
                text = text + text_block.ls_2(text_block.mlp(text_block.ln_2(text)))
        return visual.ln_post(image), self.backbone.ln_final(text)

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> dict:
        options = self.options
        visual = self.backbone.visual
        padding = texts == self.pad_id
        outputs = {"logit_scale": self.backbone.logit_scale.exp()}
        if self.backbone.logit_bias is not None:
            outputs["logit_bias"] = self.backbone.logit_bias
        if "contrastive" in self.weights:
            outputs["image_features"] = F.normalize(pool_tokens(visual, vit_tokens(visual, images)), dim=-1)
            outputs["text_features"] = F.normalize(self._text_pooled(self.text_tokens(texts, padding), texts), dim=-1)
        patch_mask = draw_patch_mask(options.image_masking, images.shape[0], tuple(visual.grid_size), options.image_mask_ratio, images.device)
        masked = mask_tokens(
            texts, content_positions(texts, self.pad_id), options.text_mask_probability, self.mask_id, self.vocab_size,
            options.mask_token_share, options.random_token_share,
        )
        predicted = masked.labels != IGNORE_INDEX
        patches = patchify(images, self.patch_size)[patch_mask]
        embedding = self.backbone.token_embedding.weight
        if "image_mim" in self.weights:
            with patches_replaced(visual, patch_mask, self.mask_token):
                image_tokens = vit_tokens(visual, images)
            outputs["image_mim_predictions"] = self.mim_head(image_tokens[:, 1:][patch_mask])
            outputs["image_mim_patches"] = patches
        if "text_mlm" in self.weights:
            text_tokens = self.text_tokens(masked.ids, padding)
            outputs["text_mlm_logits"] = self.mlm_head(text_tokens[predicted], embedding)
            outputs["text_mlm_labels"] = masked.labels[predicted]
        if "pair_mlm" in self.weights:
            image_tokens, text_tokens = self.pair_tokens(images, masked.ids, padding, patch_mask)
            outputs["pair_mlm_logits"] = self.mlm_head(text_tokens[predicted], embedding)
            outputs["pair_mlm_labels"] = masked.labels[predicted]
            outputs["pair_mim_predictions"] = self.mim_head(image_tokens[:, 1:][patch_mask])
            outputs["pair_mim_patches"] = patches
        return outputs
