from __future__ import annotations

import torch
import torch.nn.functional as F

from vlp.workloads.objectives.infonce import InfoNCELoss


def test_single_process_loss_matches_direct_formula():
    torch.manual_seed(0)
    images, texts = F.normalize(torch.randn(8, 4), dim=1), F.normalize(torch.randn(8, 4), dim=1)
    scale = torch.tensor(10.0)
    logits = scale * images @ texts.T
    labels = torch.arange(8)
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    assert torch.allclose(InfoNCELoss(local_loss=True)(images, texts, scale), expected)
    assert torch.allclose(InfoNCELoss(local_loss=False)(images, texts, scale), expected)
