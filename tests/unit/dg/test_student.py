"""The student re-spells the image tower's forward pass exactly, and the injected token really enters it."""

from __future__ import annotations

import pytest
import torch
from dg_toy import tiny_pretrained

from vlp.workloads.dg.student import StudentEncoder

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("preset, kind", [("shapes-rn-tiny", "resnet"), ("shapes-vit-tiny", "vit")])
def test_token_path_is_the_tower_without_a_token_and_differs_with_one(preset, kind):
    pretrained = tiny_pretrained(preset)
    student = StudentEncoder(pretrained.model.visual, inject_dim=64).eval()
    images = torch.randn(4, 3, 32, 32)
    reference = pretrained.model.visual(images)
    assert student.kind == kind
    assert torch.allclose(student.with_token(images, None), reference, atol=1e-5)
    assert torch.equal(StudentEncoder(pretrained.model.visual)(images), reference)
    injected = student(images, torch.randn(4, 64))
    assert injected.shape == reference.shape and not torch.allclose(injected, reference, atol=1e-3)
    injected.sum().backward()
    assert student.inject.weight.grad.abs().sum() > 0


def test_student_is_a_copy_the_pretrained_tower_stays_untouched():
    pretrained = tiny_pretrained()
    student = StudentEncoder(pretrained.model.visual, inject_dim=64)
    with torch.no_grad():
        for parameter in student.visual.parameters():
            parameter.add_(1.0)
    assert not torch.equal(next(student.visual.parameters()), next(pretrained.model.visual.parameters()))


def test_injection_needs_a_tower_with_attention():
    with pytest.raises(ValueError, match="ViT or ModifiedResNet"):
        StudentEncoder(torch.nn.Conv2d(3, 8, 3), inject_dim=64)
