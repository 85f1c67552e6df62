"""A toy fusion model over the colour toy data (colour_toy.py) whose answers are known by construction.

`ColourFusion` implements the fusion interface (encode_image, encode_text, fused_cls, itm_logits) on real tensors:
an image is its mean colour, a text the colour words its tokens name. Its fused [CLS] holds the image colour, the
text colour and their product, so "is the square red?" is linear in it; the concatenation a dual encoder offers
(image colour, text colour) cannot answer that linearly (same-colour is not a linear function of two one-hots).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from colour_toy import COLOURS, SIZE

from vlp.workloads.data.image_transforms import ImagePreprocess
from vlp.workloads.models.factory import BuiltModel

CONTEXT = 8


def tokenize(texts: list[str]) -> torch.Tensor:
    """Word ids padded to CONTEXT: a colour word is its colour index + 1, any other word 4, padding 0."""
    rows = []
    for text in texts:
        words = text.lower().replace("?", " ").replace(".", " ").split()[:CONTEXT]
        ids = [COLOURS.index(word) + 1 if word in COLOURS else len(COLOURS) + 1 for word in words]
        rows.append(ids + [0] * (CONTEXT - len(ids)))
    return torch.tensor(rows, dtype=torch.long)


class ColourDual(torch.nn.Module):
    """The dual encoder alone: what the suite's dual-encoder baselines see."""

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(images.mean(dim=(2, 3)), dim=-1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.stack([(tokens == colour + 1).any(dim=1).float() for colour in range(len(COLOURS))], dim=1)


class ColourFusion(ColourDual):
    def __init__(self, match: str = "perfect"):
        super().__init__()
        self.match = match

    def fused_cls(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        image, text = self.encode_image(images), self.encode_text(tokens)
        return torch.cat([image, text, image * text], dim=1)

    def itm_logits(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        if self.match == "off":
            raise ValueError("this model has no ITM head")
        agreement = (self.encode_image(images) * self.encode_text(tokens)).sum(dim=1)
        return agreement if self.match == "perfect" else -agreement


def built(model: torch.nn.Module) -> BuiltModel:
    preprocess = ImagePreprocess(size=(SIZE, SIZE), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return BuiltModel(model=model, model_cfg={}, tokenizer=tokenize, preprocess=preprocess)
