"""PACL's compatibility and similarity maps against direct computations; CoCa learns a caption and generates it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlp.platform.spec.model import ModelSection
from vlp.platform.spec.objective import ObjectiveSection
from vlp.workloads.models.factory import build_model
from vlp.workloads.models.pacl import pacl_compatibility
from vlp.workloads.objectives.factory import build_objective
from vlp.workloads.train.optim import build_optimizer


def test_compatibility_is_the_text_conditioned_patch_pooling():
    torch.manual_seed(0)
    patches = F.normalize(torch.randn(3, 5, 4), dim=-1)
    texts = F.normalize(torch.randn(2, 4), dim=-1)
    got = pacl_compatibility(patches, texts, temperature=0.2)
    for i in range(3):
        for j in range(2):
            weights = torch.softmax(patches[i] @ texts[j] / 0.2, dim=0)
            pooled = (weights[:, None] * patches[i]).sum(dim=0)
            assert torch.allclose(got[i, j], F.cosine_similarity(pooled, texts[j], dim=0), atol=1e-6)


def test_patch_text_similarity_maps_follow_the_patch_grid():
    built = build_model(ModelSection(arch="pacl", preset="shapes-vit-micro"))
    model = built.model.eval()
    images = torch.randn(2, 3, 32, 32)
    text_features = model.encode_text(built.tokenizer(["a red circle", "a blue square", "a star"]))
    maps = model.patch_text_similarity(images, text_features)
    assert maps.shape == (2, 3, 4, 4)  # 32 px / patch 8
    patches = model.encode_patches(images)  # row-major over the grid
    expected = patches[1, 2 * 4 + 3] @ F.normalize(text_features[0], dim=-1)
    assert torch.allclose(maps[1, 0, 2, 3], expected, atol=1e-6)
    assert model.image_text_logits(images, text_features).shape == (2, 3)


def test_coca_learns_a_caption_and_generates_it():
    torch.manual_seed(0)
    section = ModelSection(arch="coca", preset="shapes-vit-micro", coca={"caption_weight": 2.0})
    built = build_model(section)
    objective = build_objective(ObjectiveSection(), section)
    optimizer = build_optimizer(built.model, 1e-2, 0.0)
    captions = ["a small red circle", "a large blue square"]
    images, texts = torch.randn(2, 3, 32, 32), built.tokenizer(captions)
    for _ in range(25):
        loss = objective(built.model(images, texts))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    built.model.eval()
    assert built.model.generate_captions(images, built.tokenizer, max_tokens=8) == captions
    assert objective.metrics()["train/loss_caption"] < 0.5
