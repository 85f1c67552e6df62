"""Sharing between the towers is real tying: the text block's submodule *is* the image block's submodule, so the
parameters are the same objects, updated once and counted once."""

from __future__ import annotations

from collections import defaultdict

import torch


def tie_blocks(image_blocks, text_blocks, from_layer: int, parts: tuple[str, ...]) -> None:
    """For every layer index >= `from_layer`, make each named part of the text block the image block's part."""
    if len(image_blocks) != len(text_blocks):
        raise ValueError(f"tied towers need equal depth (image {len(image_blocks)} layers, text {len(text_blocks)})")
    if from_layer >= len(image_blocks):
        raise ValueError(f"model.share.from_layer {from_layer}: the towers have layers 0..{len(image_blocks) - 1}")
    for image_block, text_block in list(zip(image_blocks, text_blocks))[from_layer:]:
        for part in parts:
            setattr(text_block, part, getattr(image_block, part))


def count_parameters(model: torch.nn.Module) -> int:
    """Parameters counted once even when modules share them."""
    return sum(parameter.numel() for parameter in model.parameters())


def shared_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters reachable under more than one name, each once."""
    names = defaultdict(list)
    tensors = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        names[id(parameter)].append(name)
        tensors[id(parameter)] = parameter
    return [tensors[key] for key, paths in names.items() if len(paths) > 1]


def count_shared_parameters(model: torch.nn.Module) -> int:
    """Elements of the parameters reachable under more than one name (each shared tensor counted once)."""
    return sum(parameter.numel() for parameter in shared_parameters(model))
