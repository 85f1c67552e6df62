"""`arch: coca` — Contrastive Captioners (Yu et al., "CoCa: Contrastive Captioners are Image-Text Foundation Models").

Built from open_clip's pieces: vlp's ViT tower (so `pooling` and the MS-CLIP options apply) returns its pooled
embedding and its tokens; open_clip's text tower with a class token appended is the unimodal text encoder; open_clip's
MultimodalTransformer supplies the multimodal decoder layers (causal self-attention, then cross-attention to the
image tokens). The contrastive loss uses the unimodal embeddings; the captioning loss is teacher-forced next-token
cross-entropy on the decoder, computed only at real (non-padding) positions because the vocabulary projection
(width x 49408) dominates the cost. Captions are generated greedily (open_clip's generator needs `transformers`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.model import CLIPTextCfg, _build_text_tower
from open_clip.transformer import LayerNorm, MultimodalTransformer, QuickGELU
from torch import nn

from vlp.workloads.models.vision_tower import VisionTower

PAD_ID = 0


class CoCaModel(nn.Module):
    def __init__(self, model_cfg: dict):
        super().__init__()
        options = model_cfg.get("vlp", {})
        embed_dim = model_cfg["embed_dim"]
        quick_gelu = model_cfg.get("quick_gelu", False)
        text_cfg = CLIPTextCfg(**{**model_cfg["text_cfg"], "embed_cls": True, "output_tokens": True})
        self.visual = VisionTower(
            embed_dim, model_cfg["vision_cfg"], quick_gelu, options.get("pooling", "cls"), options.get("ggem"),
            bool(options.get("early_specialization")), options.get("aux_adapter"), output_tokens=True,
        )
        self.text = _build_text_tower(embed_dim, text_cfg, quick_gelu)
        # open_clip keeps the legacy (off-by-one) padding mask for old CoCa weights; new models use the correct one.
        self.text.correct_cls_mask = True
        width = text_cfg.width
        layers = (options.get("coca") or {}).get("decoder_layers") or text_cfg.layers
        self.decoder = MultimodalTransformer(
            width=width, layers=layers, heads=text_cfg.heads, context_length=text_cfg.context_length,
            mlp_ratio=text_cfg.mlp_ratio, act_layer=QuickGELU if quick_gelu else nn.GELU, norm_layer=LayerNorm,
            output_dim=text_cfg.vocab_size,
        )
        self.image_to_decoder = nn.Linear(self.visual.transformer.width, width)
        self.logit_scale = nn.Parameter(torch.tensor(float(model_cfg.get("init_logit_scale", np.log(1 / 0.07)))))
        bias = model_cfg.get("init_logit_bias")
        self.logit_bias = nn.Parameter(torch.tensor(float(bias))) if bias is not None else None
        self.context_length = text_cfg.context_length
        self._init_decoder(width, layers)

    def _init_decoder(self, width: int, layers: int) -> None:
        # open_clip's MultimodalTransformer leaves text_projection uninitialised (torch.empty); CLIP's scheme here.
        attn_std, fc_std = width**-0.5, (2 * width) ** -0.5
        proj_std = attn_std * (2 * layers) ** -0.5
        for block in [*self.decoder.resblocks, *self.decoder.cross_attn]:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.decoder.text_projection, std=attn_std)

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        pooled, _ = self.visual(images)
        return F.normalize(pooled, dim=-1) if normalize else pooled

    def encode_text(self, texts: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        pooled, _ = self.text(texts)
        return F.normalize(pooled, dim=-1) if normalize else pooled

    def decode(self, image_memory: torch.Tensor, token_embeddings: torch.Tensor) -> torch.Tensor:
        """Multimodal decoder layers over the unimodal token outputs: [B, L, width] -> [B, L, width]."""
        length = token_embeddings.shape[1]
        mask = self.decoder.attn_mask[:length, :length]
        x = token_embeddings
        for self_attention, cross_attention in zip(self.decoder.resblocks, self.decoder.cross_attn):
            x = self_attention(x, attn_mask=mask)
            x = cross_attention(x, k_x=image_memory, v_x=image_memory)
        return x

    def vocabulary_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder.ln_final(hidden) @ self.decoder.text_projection

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> dict:
        image_latent, image_tokens = self.visual(images)
        text_latent, token_embeddings = self.text(texts)
        # Teacher forcing: position t predicts token t + 1.
        hidden = self.decode(self.image_to_decoder(image_tokens), token_embeddings[:, :-1])
        labels = texts[:, 1:]
        real = labels != PAD_ID
        outputs = {
            "image_features": F.normalize(image_latent, dim=-1),
            "text_features": F.normalize(text_latent, dim=-1),
            "logit_scale": self.logit_scale.exp(),
            "caption_logits": self.vocabulary_logits(hidden[real]),
            "caption_labels": labels[real],
        }
        if self.logit_bias is not None:
            outputs["logit_bias"] = self.logit_bias
        return outputs

    @torch.no_grad()
    def generate(self, images: torch.Tensor, sot_id: int, eot_id: int, max_tokens: int = 20) -> torch.Tensor:
        """Greedy decoding: [B, 1 + n] token ids starting with `sot_id`; rows that ended are padded with 0."""
        max_tokens = min(max_tokens, self.context_length - 1)
        _, image_tokens = self.visual(images)
        memory = self.image_to_decoder(image_tokens)
        sequence = torch.full((images.shape[0], 1), sot_id, dtype=torch.long, device=images.device)
        finished = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
        for _ in range(max_tokens):
            _, token_embeddings = self.text(sequence)
            next_token = self.vocabulary_logits(self.decode(memory, token_embeddings)[:, -1]).argmax(dim=-1)
            next_token = torch.where(finished, torch.full_like(next_token, PAD_ID), next_token)
            sequence = torch.cat([sequence, next_token[:, None]], dim=1)
            finished |= next_token == eot_id
            if bool(finished.all()):
                break
        return sequence

    def generate_captions(self, images: torch.Tensor, tokenizer, max_tokens: int = 20) -> list[str]:
        """Greedy captions as text, for a few evaluation images."""
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # vlp's caching wrapper around open_clip's tokenizer
        sequences = self.generate(images, tokenizer.sot_token_id, tokenizer.eot_token_id, max_tokens)
        captions = []
        for row in sequences.tolist():
            tokens = []
            for token in row[1:]:
                if token in (tokenizer.eot_token_id, PAD_ID):
                    break
                tokens.append(token)
            captions.append(tokenizer.decode(tokens).strip())
        return captions


def build(model_cfg: dict) -> CoCaModel:
    return CoCaModel(model_cfg)
