"""The fusion architectures train under DDP (2 gloo processes, DDP's default of every trainable parameter receiving
a gradient each step): the loss falls on a fixed batch, and the checkpoint reloads into the same unimodal towers."""

from __future__ import annotations

import pytest
import torch

from combination_workers import train_all
from two_process_gloo import run_on_two_processes

MICRO = "shapes-vit-micro"
COMBINATIONS = [
    ({"arch": "fusion", "preset": MICRO, "masked_modeling": {"text_mask_probability": 0.5}}, {}),
    ({"arch": "fusion", "preset": MICRO, "fusion": {"kind": "merged", "mim_weight": 1.0, "alignment_weight": 0.5}}, {}),
    ({"arch": "fusion", "preset": "shapes-rn-tiny", "fusion": {"kind": "merged"}}, {}),
    ({"arch": "flava", "preset": MICRO, "masked_modeling": {"image_masking": "block"}}, {}),
    ({"arch": "flava", "preset": MICRO, "fusion": {"kind": "co_attention"}}, {"contrastive": "siglip"}),
    ({"arch": "multiway", "preset": MICRO, "masked_modeling": {"enabled": True}}, {}),
    ({"arch": "multiway", "preset": MICRO, "share": {"from_layer": 1}, "masked_modeling": {"enabled": True, "contrastive_weight": 1.0, "vl_expert_layers": 2}}, {}),
]


def label(index: int) -> str:
    model_doc, objective_doc = COMBINATIONS[index]
    return f"{index}-{model_doc['arch']}-{model_doc['preset'].removeprefix('shapes-')}-{objective_doc.get('contrastive', 'infonce')}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    # The same masks and negatives every step: a fixed problem whose loss must fall.
    return run_on_two_processes(train_all, COMBINATIONS, str(tmp_path_factory.mktemp("checkpoints")), 3)


@pytest.mark.parametrize("index", range(len(COMBINATIONS)), ids=label)
def test_trains_under_ddp_and_round_trips(trained, index):
    for result in (trained[0][index], trained[1][index]):
        assert result["losses"][-1] < result["losses"][0], f"loss did not fall: {result['losses']}"
    for name, (before, after) in trained[0][index]["round_trip"].items():
        assert torch.allclose(before, after, atol=1e-5), name
