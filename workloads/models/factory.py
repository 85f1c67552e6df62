"""Build a CLIP model, its tokenizer and its image transform from the `model:` section.

Swap in your own architecture by adding a preset JSON (any open_clip `model_cfg`) or by building the
model yourself and passing it to the trainer: nothing below is global state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from vlp.platform.spec.model import ModelSection
from vlp.workloads.models.catalog import load_model_cfg


@dataclass(frozen=True)
class BuiltModel:
    model: torch.nn.Module
    model_cfg: dict[str, Any]
    tokenizer: Callable[[list[str]], torch.Tensor]
    image_size: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]


def build_model(section: ModelSection) -> BuiltModel:
    model_cfg = load_model_cfg(section.preset)
    return build_model_from_cfg(model_cfg)


def build_model_from_cfg(model_cfg: dict[str, Any]) -> BuiltModel:
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from open_clip.model import CLIP
    from open_clip.tokenizer import SimpleTokenizer

    model = CLIP(**model_cfg)
    context_length = model_cfg["text_cfg"].get("context_length", 77)
    image_size = model_cfg["vision_cfg"]["image_size"]
    return BuiltModel(
        model=model,
        model_cfg=model_cfg,
        tokenizer=SimpleTokenizer(context_length=context_length),
        image_size=image_size if isinstance(image_size, int) else image_size[0],
        image_mean=OPENAI_DATASET_MEAN,
        image_std=OPENAI_DATASET_STD,
    )


def count_parameters(model: torch.nn.Module) -> int:
    """Parameters counted once even when modules share them."""
    return sum(parameter.numel() for parameter in {id(p): p for p in model.parameters()}.values())
