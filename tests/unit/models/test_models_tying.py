"""Sharing is real: tied modules are the same objects, and the parameter count drops by exactly the shared size."""

from __future__ import annotations

import pytest
import torch

from vlp.platform.errors import SpecError
from vlp.platform.spec.model import ModelSection
from vlp.workloads.models.factory import build_model, count_parameters, count_shared_parameters

PRESET = "shapes-vit-shared"


def towers(model):
    return model.visual.transformer.resblocks, model.transformer.resblocks


def size(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


@pytest.mark.parametrize(
    "arch, share, tied_parts, first_tied",
    [("msclip", {}, ("attn", "mlp"), 1), ("multiway", {}, ("attn",), 0), ("msclip", {"from_layer": 2}, ("attn", "mlp"), 2)],
)
def test_tied_parts_are_the_same_objects_and_counted_once(arch, share, tied_parts, first_tied):
    separate = build_model(ModelSection(arch="clip", preset=PRESET)).model
    shared = build_model(ModelSection(arch=arch, preset=PRESET, **({"share": share} if share else {}))).model
    image_blocks, text_blocks = towers(shared)
    shared_size = 0
    for index, (image_block, text_block) in enumerate(zip(image_blocks, text_blocks)):
        tied = index >= first_tied
        for part in ("attn", "mlp"):
            same = getattr(image_block, part) is getattr(text_block, part)
            assert same == (tied and part in tied_parts), (index, part)
            if same:
                shared_size += size(getattr(image_block, part))
                for (_, a), (_, b) in zip(getattr(image_block, part).named_parameters(), getattr(text_block, part).named_parameters()):
                    assert a is b
        # LayerNorms always stay per modality.
        assert image_block.ln_1 is not text_block.ln_1 and image_block.ln_2 is not text_block.ln_2
    assert shared_size > 0
    assert count_shared_parameters(shared) == shared_size
    assert count_parameters(separate) - count_parameters(shared) == shared_size
    assert count_shared_parameters(separate) == 0


def test_an_update_through_one_tower_moves_the_other():
    model = build_model(ModelSection(arch="msclip", preset=PRESET)).model
    image_blocks, text_blocks = towers(model)
    before = text_blocks[1].mlp.c_fc.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    model.encode_image(torch.randn(2, 3, 32, 32)).sum().backward()  # the image tower alone
    optimizer.step()
    assert not torch.equal(text_blocks[1].mlp.c_fc.weight, before)
    assert text_blocks[0].mlp.c_fc.weight.grad is None  # layer 0 is the text tower's own


@pytest.mark.parametrize("arch", ["msclip", "multiway"])
def test_towers_of_different_shapes_cannot_be_tied(arch):
    with pytest.raises(SpecError, match="same shape.*width 128 vs 64"):
        build_model(ModelSection(arch=arch, preset="shapes-vit-tiny"))


def test_share_from_layer_must_exist():
    with pytest.raises(SpecError, match="from_layer 4: the towers have layers 0..3"):
        build_model(ModelSection(arch="msclip", preset=PRESET, share={"from_layer": 4}))
