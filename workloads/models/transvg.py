"""`arch: transvg` — visual grounding by direct box regression (Deng et al., "TransVG: End-to-End Visual Grounding
with Transformers", and "TransVG++: ... with Language Conditioned Vision Transformer").

The towers are a CLIP (`backbone`, so `model.init_from` a trained clip fills them). TransVG: the image tower's
tokens (a ViT's class and patch tokens, or a ResNet's last feature map flattened) and the text tower's token states
are projected to the fusion width; a learnable [REG] token, position embeddings over the joint sequence
([REG], visual, text: they also tell the modalities apart) and a stack of transformer encoder layers follow; the
[REG] output goes through an MLP to a sigmoid (cx, cy, w, h), returned as (x0, y0, x1, y1) normalised to the input.

TransVG++ (`language_conditioned`): no separate fusion stack. The ViT itself fuses: before each of its upper
`conditioned_layers` blocks a language prompter (learnable queries cross-attending to the text tokens) writes
`prompt_tokens` language prompts into the sequence, and a [REG] token joins the sequence at the first of them;
the ViT's own attention mixes [REG], patches and prompts, and the [REG] output after the ViT's final LayerNorm goes
through the same MLP head. The lower blocks stay the pretrained unimodal ViT.

Backbone parameters no grounding loss reaches (the contrastive temperature, the embedding projections, a ResNet's
attention pool) are frozen at build, so data-parallel training does not wait for their gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import TextTransformer, VisionTransformer
from torch import nn
from torchvision.ops import MLP, box_convert

from vlp.workloads.models import clip
from vlp.workloads.models.vision_tower import VisionTower, vit_tokens

# TransVG's prediction head: a 3-layer MLP (DETR's) from the [REG] state to the 4 box numbers.
HEAD_LAYERS = 3
# Feed-forward width of the fusion layers over their width: TransVG's are 2048 at 256 (8x); 4x keeps tiny presets tiny.
FUSION_MLP_RATIO = 4


class LanguagePrompter(nn.Module):
    """Learnable queries read the text tokens (one cross-attention and an MLP, pre-norm) -> language prompts."""

    def __init__(self, width: int, text_width: int, heads: int, prompts: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(prompts, width) * width**-0.5)
        self.text_in = nn.Linear(text_width, width)
        self.norm_query = nn.LayerNorm(width)
        self.norm_text = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = MLP(width, [2 * width, width], activation_layer=nn.GELU)

    def forward(self, text_tokens: torch.Tensor, text_padding: torch.Tensor) -> torch.Tensor:
        """[B, L, text_width] text states and [B, L] padding flags -> [B, prompts, width]."""
        text = self.norm_text(self.text_in(text_tokens))
        queries = self.queries.expand(text.shape[0], -1, -1)
        read, _ = self.attention(self.norm_query(queries), text, text, key_padding_mask=text_padding, need_weights=False)
        prompts = queries + read
        return prompts + self.mlp(self.norm_mlp(prompts))


class TransVG(nn.Module):
    def __init__(self, model_cfg: dict):
        super().__init__()
        vlp_options = model_cfg.get("vlp", {})
        options = vlp_options.get("transvg") or {}
        backbone_options = {key: vlp_options[key] for key in ("pooling", "ggem") if key in vlp_options}
        open_clip_cfg = {key: value for key, value in model_cfg.items() if key != "vlp"}
        self.backbone = clip.build({**open_clip_cfg, "vlp": backbone_options})
        self.language_conditioned = bool(options.get("language_conditioned", False))
        self.pad_id = int(open_clip_cfg["text_cfg"].get("pad_id", 0))
        text_width = open_clip_cfg["text_cfg"]["width"]
        visual = self.backbone.visual
        is_vit = isinstance(visual, VisionTransformer)
        if not is_vit and not isinstance(visual, ModifiedResNet):
            raise ValueError(f"model.arch transvg needs a ViT or an open_clip ResNet image tower, not {type(visual).__name__}")
        if self.language_conditioned:
            if not is_vit:
                raise ValueError("model.transvg.language_conditioned (TransVG++) needs a ViT image tower (a preset with patch_size)")
            blocks = len(visual.transformer.resblocks)
            conditioned = options.get("conditioned_layers") or max(1, blocks // 2)
            if conditioned > blocks:
                raise ValueError(f"model.transvg.conditioned_layers {conditioned}: the image tower has {blocks} layers")
            width, heads = visual.transformer.width, visual.transformer.resblocks[0].attn.num_heads
            self.first_conditioned = blocks - conditioned
            self.prompters = nn.ModuleList(
                LanguagePrompter(width, text_width, heads, int(options.get("prompt_tokens", 4))) for _ in range(conditioned)
            )
            self.reg_token = nn.Parameter(torch.randn(width) * width**-0.5)
            head_width = width
        else:
            width = int(options.get("fusion_width", 128))
            heads = int(options.get("fusion_heads", 4))
            if width % heads:
                raise ValueError(f"model.transvg.fusion_width {width} is not a multiple of fusion_heads {heads}")
            visual_tokens, visual_width = _visual_token_shape(visual, open_clip_cfg["vision_cfg"])
            text_tokens = open_clip_cfg["text_cfg"].get("context_length", 77)
            self.visual_in = nn.Linear(visual_width, width)
            self.text_in = nn.Linear(text_width, width)
            self.reg_token = nn.Parameter(torch.randn(width) * width**-0.5)
            self.position = nn.Parameter(torch.randn(1 + visual_tokens + text_tokens, width) * 0.02)
            layer = nn.TransformerEncoderLayer(
                width, heads, dim_feedforward=FUSION_MLP_RATIO * width,
                dropout=float(options.get("dropout", 0.1)), activation="gelu", batch_first=True, norm_first=True,
            )
            self.fusion = nn.TransformerEncoder(layer, int(options.get("fusion_layers", 2)), norm=nn.LayerNorm(width), enable_nested_tensor=False)
            head_width = width
        self.box_head = MLP(head_width, [head_width] * (HEAD_LAYERS - 1) + [4], activation_layer=nn.ReLU)
        self._freeze(options)

    def _freeze(self, options: dict) -> None:
        backbone = self.backbone
        unused = [backbone.logit_scale, getattr(backbone, "logit_bias", None)]
        if isinstance(getattr(backbone, "text", None), TextTransformer):
            text = [backbone.text]
            unused.append(backbone.text.text_projection)
        else:  # open_clip's CLIP keeps its text tower's parts on the model itself
            text = [backbone.token_embedding, backbone.positional_embedding, backbone.transformer, backbone.ln_final]
            unused.append(backbone.text_projection)
        visual = backbone.visual
        unused.append(visual.attnpool if isinstance(visual, ModifiedResNet) else visual.proj)
        if isinstance(visual, VisionTower):
            unused.append(visual.pool)
        for item in unused:
            _freeze(item)
        if options.get("freeze_image_tower"):
            _freeze(visual)
        if options.get("freeze_text_tower"):
            for part in text:
                _freeze(part)

    # Unimodal use of the towers (zero-shot, retrieval) works as for the clip the weights came from.
    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return self.backbone.encode_image(images, normalize=normalize)

    def encode_text(self, texts: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return self.backbone.encode_text(texts, normalize=normalize)

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> dict:
        text_tokens, text_padding = self._text_tokens(texts)
        if self.language_conditioned:
            reg = self._conditioned_vit(images, text_tokens, text_padding)
        else:
            reg = self._fused(images, text_tokens, text_padding)
        centre_size = self.box_head(reg).float().sigmoid()
        return {"boxes": box_convert(centre_size, "cxcywh", "xyxy")}

    @torch.no_grad()
    def predict_boxes(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        """[B, 4] normalised (x0, y0, x1, y1) in [0, 1] of each image's input for its row's expression."""
        return self(images, texts)["boxes"].clamp(0.0, 1.0)

    def _text_tokens(self, texts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The text tower's token states [B, L, width] (before pooling and projection) and [B, L] padding flags."""
        backbone = self.backbone
        if isinstance(getattr(backbone, "text", None), TextTransformer):
            backbone.text.output_tokens = True
            _, tokens = backbone.text(texts)
            return tokens, (texts == self.pad_id)[:, -tokens.shape[1]:]
        cast = backbone.transformer.get_cast_dtype()
        x = backbone.token_embedding(texts).to(cast) + backbone.positional_embedding.to(cast)
        x = backbone.ln_final(backbone.transformer(x, attn_mask=backbone.attn_mask))
        return x, texts == self.pad_id

    def _visual_tokens(self, images: torch.Tensor) -> torch.Tensor:
        visual = self.backbone.visual
        if isinstance(visual, ModifiedResNet):
            x = visual.stem(images.to(visual.conv1.weight.dtype))
            x = visual.layer4(visual.layer3(visual.layer2(visual.layer1(x))))
            return x.flatten(2).transpose(1, 2)
        return vit_tokens(visual, images)

    def _fused(self, images: torch.Tensor, text_tokens: torch.Tensor, text_padding: torch.Tensor) -> torch.Tensor:
        visual = self.visual_in(self._visual_tokens(images))
        text = self.text_in(text_tokens)
        reg = self.reg_token.expand(visual.shape[0], 1, -1)
        sequence = torch.cat([reg, visual, text], dim=1) + self.position[: 1 + visual.shape[1] + text.shape[1]]
        padding = torch.cat([text_padding.new_zeros(visual.shape[0], 1 + visual.shape[1]), text_padding], dim=1)
        return self.fusion(sequence, src_key_padding_mask=padding)[:, 0]

    def _conditioned_vit(self, images: torch.Tensor, text_tokens: torch.Tensor, text_padding: torch.Tensor) -> torch.Tensor:
        visual = self.backbone.visual
        x = visual._embeds(images)
        prompts = 0
        for index, block in enumerate(visual.transformer.resblocks):
            if index >= self.first_conditioned:
                layer_prompts = self.prompters[index - self.first_conditioned](text_tokens, text_padding).to(x.dtype)
                if index == self.first_conditioned:
                    x = torch.cat([self.reg_token.to(x.dtype).expand(x.shape[0], 1, -1), x], dim=1)
                # Each conditioned layer gets fresh prompts from its own prompter (the previous layer's are dropped).
                x = torch.cat([x[:, : x.shape[1] - prompts], layer_prompts], dim=1)
                prompts = layer_prompts.shape[1]
            x = block(x)
        return visual.ln_post(x[:, 0])


def _visual_token_shape(visual: nn.Module, vision_cfg: dict) -> tuple[int, int]:
    """(tokens, width) of the image tower's token output for the preset's image size."""
    if isinstance(visual, ModifiedResNet):
        size = vision_cfg["image_size"]
        height, width = (size, size) if isinstance(size, int) else size
        return (height // 32) * (width // 32), visual.attnpool.k_proj.in_features
    grid = visual.grid_size
    return 1 + grid[0] * grid[1], visual.transformer.width


def _freeze(item: nn.Module | nn.Parameter | None) -> None:
    if item is None:
        return
    parameters = [item] if isinstance(item, nn.Parameter) else item.parameters()
    for parameter in parameters:
        parameter.requires_grad_(False)


def build(model_cfg: dict) -> TransVG:
    return TransVG(model_cfg)
