"""`train.grad_checkpointing`: recompute transformer activations in the backward pass instead of keeping them."""

from __future__ import annotations

import torch

from vlp.platform.errors import SpecError


def enable_activation_checkpointing(model: torch.nn.Module) -> int:
    """Switch on the `grad_checkpointing` flag of every open_clip transformer in the model (the towers and any
    tower vlp builds from open_clip's blocks); returns how many were switched on."""
    switched = 0
    for module in model.modules():
        if isinstance(getattr(module, "grad_checkpointing", None), bool):
            module.grad_checkpointing = True
            switched += 1
    if not switched:
        raise SpecError("train.grad_checkpointing: this model has no transformer that supports activation checkpointing")
    return switched
