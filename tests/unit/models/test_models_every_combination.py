"""Every pair of architecture, pooling and objective trains under DDP (2 gloo processes): the loss falls on a fixed
batch, and the checkpoint reloads into a model that gives the same embeddings (tying included). Each architecture
meets each objective once, with poolings rotated so that every architecture also meets every pooling and every
pooling every objective (a pairwise covering set: 20 combinations instead of the full 60)."""

from __future__ import annotations

import itertools

import pytest
import torch

from combination_workers import NLIP_FAST, train_all
from two_process_gloo import run_on_two_processes

ARCHS = ("clip", "msclip", "multiway", "coca", "pacl")
POOLINGS = ("cls", "mean", "ggem")
OBJECTIVES = (
    {"contrastive": "infonce"},
    {"contrastive": "siglip"},
    {"contrastive": "infonce", "noise": "nlip", "nlip": NLIP_FAST},
    {"contrastive": "siglip", "noise": "nlip", "nlip": NLIP_FAST},
)
MICRO = "shapes-vit-micro"
COMBINATIONS = [
    ({"arch": arch, "preset": MICRO, "pooling": POOLINGS[(a + o) % len(POOLINGS)]}, objective)
    for (a, arch), (o, objective) in itertools.product(enumerate(ARCHS), enumerate(OBJECTIVES))
]
# The options that change the image tower, and a ResNet tower's poolings (no class token there).
COMBINATIONS += [
    ({"arch": "msclip", "preset": MICRO, "early_specialization": True, "aux_adapter": {"enabled": True, "layers": [0, 1]}}, {}),
    ({"arch": "clip", "preset": MICRO, "early_specialization": True, "pooling": "ggem"}, {}),
    ({"arch": "coca", "preset": MICRO, "early_specialization": True}, {}),
    ({"arch": "pacl", "preset": MICRO, "pacl": {"freeze_backbone": True, "global_loss_weight": 0.5}}, {"local_loss": False}),
    ({"arch": "clip", "preset": "shapes-rn-tiny", "pooling": "cls"}, {}),
    ({"arch": "clip", "preset": "shapes-rn-tiny", "pooling": "mean"}, {"contrastive": "siglip"}),
    ({"arch": "clip", "preset": "shapes-rn-tiny", "pooling": "ggem"}, {"noise": "nlip", "nlip": NLIP_FAST}),
]


def label(index: int) -> str:
    model_doc, objective_doc = COMBINATIONS[index]
    extras = "+".join(key for key in ("early_specialization", "aux_adapter", "pacl") if key in model_doc)
    return f"{model_doc['arch']}-{model_doc['preset'].removeprefix('shapes-')}-{model_doc.get('pooling', 'cls')}-{objective_doc.get('contrastive', 'infonce')}-{objective_doc.get('noise', 'none')}{'-' + extras if extras else ''}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return run_on_two_processes(train_all, COMBINATIONS, str(tmp_path_factory.mktemp("checkpoints")))


def test_the_combinations_cover_every_pair():
    def kind(objective: dict) -> tuple:
        return objective.get("contrastive"), objective.get("noise")

    rows = [(model["arch"], model["pooling"], kind(objective)) for model, objective in COMBINATIONS if objective in OBJECTIVES]
    assert {(arch, pooling) for arch, pooling, _ in rows} == set(itertools.product(ARCHS, POOLINGS))
    assert {(arch, objective) for arch, _, objective in rows} == set(itertools.product(ARCHS, map(kind, OBJECTIVES)))
    assert {(pooling, objective) for _, pooling, objective in rows} == set(itertools.product(POOLINGS, map(kind, OBJECTIVES)))


@pytest.mark.parametrize("index", range(len(COMBINATIONS)), ids=label)
def test_trains_and_round_trips(trained, index):
    rank0, rank1 = trained[0][index], trained[1][index]
    for result in (rank0, rank1):
        first, last = result["losses"][0], result["losses"][-1]
        assert last < first, f"loss did not fall: {result['losses']}"
    for name, (before, after) in rank0["round_trip"].items():
        assert torch.allclose(before, after, atol=1e-5), name
    assert rank0["tied_after_reload"] == rank0["tied_before"]
    arch = COMBINATIONS[index][0]["arch"]
    assert (rank0["tied_before"] > 0) == (arch in ("msclip", "multiway"))
