"""GGeM pooling against a direct, loop-by-loop computation of its formula."""

from __future__ import annotations

import torch

from vlp.platform.spec.model import ModelSection
from vlp.workloads.models.factory import build_model
from vlp.workloads.models.ggem import GGeM
from vlp.workloads.models.pooling import TokenPooling


def direct_ggem(tokens: torch.Tensor, exponents: list[float], eps: float) -> torch.Tensor:
    batch, count, channels = tokens.shape
    per_group = channels // len(exponents)
    out = torch.empty(batch, channels, dtype=torch.float64)
    for b in range(batch):
        for c in range(channels):
            p = exponents[c // per_group]
            total = sum(max(float(tokens[b, t, c]), eps) ** p for t in range(count))
            out[b, c] = (total / count) ** (1.0 / p)
    return out


def test_matches_the_formula_per_group():
    torch.manual_seed(0)
    tokens = torch.randn(3, 5, 8).abs() + 0.1
    tokens[0, :, 0] = -1.0  # clamped to eps
    pool = GGeM(channels=8, groups=4, init_p=3.0, eps=1e-6)
    with torch.no_grad():
        pool.p.copy_(torch.tensor([1.0, 2.0, 3.5, 7.0]))
    expected = direct_ggem(tokens, [1.0, 2.0, 3.5, 7.0], 1e-6)
    assert torch.allclose(pool(tokens).double(), expected, rtol=1e-5, atol=1e-6)


def test_exponent_one_is_the_mean_and_large_exponents_approach_the_max():
    tokens = torch.rand(2, 6, 4) + 0.05
    mean_pool, max_pool = GGeM(4, 1, init_p=1.0), GGeM(4, 1, init_p=60.0)
    assert torch.allclose(mean_pool(tokens), tokens.mean(dim=1), atol=1e-6)
    assert torch.allclose(max_pool(tokens), tokens.max(dim=1).values, rtol=0.05)


def test_exponents_learn_and_default_to_one_group_per_head():
    model = build_model(ModelSection(arch="clip", preset="shapes-vit-shared", pooling="ggem")).model
    pool = model.visual.pool
    assert isinstance(pool, TokenPooling) and pool.ggem.p.shape == (3,)  # width 96 / head width 32
    model.encode_image(torch.randn(2, 3, 32, 32)).sum().backward()
    assert pool.ggem.p.grad is not None and pool.ggem.p.grad.abs().sum() > 0
    grouped = build_model(ModelSection(arch="clip", preset="shapes-vit-shared", pooling="ggem", ggem={"groups": 12})).model
    assert grouped.visual.pool.ggem.p.shape == (12,)
