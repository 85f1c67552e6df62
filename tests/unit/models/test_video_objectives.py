"""The video objectives against direct computations: masked video reconstruction on per-patch normalised pixels,
OmniVL's unified contrastive loss (InfoNCE without labels, same-class positives with them), their weighted sum."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vlp.workloads.objectives.infonce import InfoNCELoss
from vlp.workloads.objectives.masked_video import MaskedVideoLoss, normalised_patches
from vlp.workloads.objectives.unified_contrastive import UnifiedContrastiveLoss
from vlp.workloads.objectives.video_pretraining import VideoPretrainingObjective


def features(count: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(count, 8, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_masked_video_target_is_each_patch_normalised_by_its_own_mean_and_variance():
    pixels = torch.randn(2, 3, 5, 12, generator=torch.Generator().manual_seed(0)) * 4 + 7
    target = normalised_patches(pixels)
    for index in [(0, 0, 0), (1, 2, 4)]:
        patch = pixels[index]
        assert torch.allclose(target[index], (patch - patch.mean()) / torch.sqrt(patch.var(unbiased=True) + 1e-6), atol=1e-5)
    loss = MaskedVideoLoss()
    assert float(loss(target, pixels)) == pytest.approx(0.0, abs=1e-10)
    prediction = torch.randn(2, 3, 5, 12, generator=torch.Generator().manual_seed(1))
    assert float(loss(prediction, pixels)) == pytest.approx(float(((prediction - target) ** 2).mean()), rel=1e-6)
    # The target depends on each patch's contrast, not on its brightness or scale.
    assert float(loss(prediction, pixels * 3 + 10)) == pytest.approx(float(loss(prediction, pixels)), rel=1e-4)


@pytest.mark.parametrize("local_loss", [True, False])
def test_unified_contrastive_without_labels_is_infonce(local_loss):
    videos, texts = features(6, 0).requires_grad_(), features(6, 1)
    scale = torch.tensor(10.0)
    unlabelled = torch.full((6,), -1)
    unified = UnifiedContrastiveLoss(local_loss)(videos, texts, scale, unlabelled)
    infonce = InfoNCELoss(local_loss)(videos, texts, scale)
    assert float(unified.detach()) == pytest.approx(float(infonce.detach()), rel=1e-6)
    unified_grad, = torch.autograd.grad(unified, videos)
    infonce_grad, = torch.autograd.grad(InfoNCELoss(local_loss)(videos, texts, scale), videos)
    assert torch.allclose(unified_grad, infonce_grad, atol=1e-7)


def test_unified_contrastive_counts_same_class_samples_as_positives():
    videos, texts = features(5, 0), features(5, 1)
    scale = 5.0
    labels = torch.tensor([2, -1, 2, 0, 2])  # rows 0, 2, 4 share a class; 1 is a plain pair; 3 is alone in its class
    got = UnifiedContrastiveLoss()(videos, texts, torch.tensor(scale), labels)
    logits = scale * videos @ texts.T
    expected = 0.0
    for row in range(5):
        positives = [column for column in range(5) if column == row or (labels[row] >= 0 and labels[column] == labels[row])]
        to_texts = -torch.log_softmax(logits[row], dim=0)[positives].mean()
        to_videos = -torch.log_softmax(logits[:, row], dim=0)[positives].mean()
        expected += float(to_texts + to_videos) / 2
    assert float(got) == pytest.approx(expected / 5, rel=1e-6)


def test_same_class_captions_pull_together_under_the_unified_loss_only():
    """Two clips of one class: the unified loss is lower when the first clip is close to the second one's caption."""
    texts = F.normalize(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), dim=-1)
    labels = torch.tensor([4, 4, -1])
    near_own = F.normalize(torch.tensor([[1.0, 0.2, 0.0], [0.2, 1.0, 0.0], [0.0, 0.0, 1.0]]), dim=-1)
    between = F.normalize(torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), dim=-1)
    scale = torch.tensor(10.0)
    unified = UnifiedContrastiveLoss()
    assert float(unified(between, texts, scale, labels)) < float(unified(near_own, texts, scale, labels))
    infonce = InfoNCELoss()
    assert float(infonce(between, texts, scale)) > float(infonce(near_own, texts, scale))


def test_the_video_objective_is_the_weighted_sum_of_its_terms():
    videos, texts = features(4, 0), features(4, 1)
    prediction, pixels = torch.randn(4, 2, 3, 12), torch.randn(4, 2, 3, 12)
    outputs = {"video_features": videos, "text_features": texts, "logit_scale": torch.tensor(10.0),
               "masked_video_prediction": prediction, "masked_video_target": pixels}
    labels = torch.tensor([1, 1, -1, 0])
    objective = VideoPretrainingObjective(InfoNCELoss(), 0.5, UnifiedContrastiveLoss(), 2.0, masked_video_weight=0.25)
    total = objective(outputs, {"label": labels})
    expected = (0.5 * InfoNCELoss()(videos, texts, torch.tensor(10.0)) + 2.0 * UnifiedContrastiveLoss()(videos, texts, torch.tensor(10.0), labels)
                + 0.25 * MaskedVideoLoss()(prediction, pixels))
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    assert set(objective.metrics()) == {"train/loss_contrastive", "train/loss_unified_contrastive", "train/loss_masked_video"}


def test_the_unified_term_without_labels_in_the_batch_treats_every_sample_as_a_pair():
    videos, texts = features(4, 0), features(4, 1)
    outputs = {"video_features": videos, "text_features": texts, "logit_scale": torch.tensor(10.0)}
    objective = VideoPretrainingObjective(None, 0.0, UnifiedContrastiveLoss(), 1.0)
    assert float(objective(outputs, {})) == pytest.approx(float(InfoNCELoss()(videos, texts, torch.tensor(10.0))), rel=1e-6)
    assert objective.metrics() == {}  # one term: the total is the term


def test_an_objective_without_a_contrastive_term_is_refused():
    with pytest.raises(ValueError, match="contrastive"):
        VideoPretrainingObjective(InfoNCELoss(), 0.0, None, 0.0, masked_video_weight=1.0)


def test_the_spec_sets_the_terms_and_refuses_what_the_video_objective_cannot_do():
    from vlp.platform.errors import SpecError
    from vlp.platform.spec.model import ModelSection
    from vlp.platform.spec.objective import ObjectiveSection
    from vlp.workloads.objectives.factory import build_objective
    from vlp.workloads.objectives.siglip import SigLipLoss

    model = ModelSection(arch="video", preset="shapes-vit-micro", video={"contrastive_weight": 0, "unified_contrastive_weight": 1, "masked_video": {"weight": 0.5}})
    objective = build_objective(ObjectiveSection(), model)
    assert isinstance(objective, VideoPretrainingObjective)
    assert objective.contrastive is None and objective.unified is not None and objective.masked_video is not None
    assert objective.weights == {"contrastive": 0.0, "unified_contrastive": 1.0, "masked_video": 0.5}
    assert isinstance(build_objective(ObjectiveSection(contrastive="siglip"), ModelSection(arch="video")).contrastive, SigLipLoss)
    with pytest.raises(SpecError, match="unified_contrastive_weight"):
        build_objective(ObjectiveSection(contrastive="siglip"), model)
    with pytest.raises(SpecError, match="objective.noise"):
        build_objective(ObjectiveSection(noise="nlip"), ModelSection(arch="video"))


@pytest.mark.parametrize(
    ("video", "message"),
    [
        ({"contrastive_weight": 0}, "both 0"),
        ({"temporal_layers": 4}, "temporal_pooling: transformer"),
        ({"masked_video": {"mask_ratio": 0.9}}, "weight > 0"),
        ({"motion_branch": {"width": 32}}, "enabled: true"),
        ({"masked_video": {"weight": 1}, "freeze_image_encoder": True}, "freeze_image_encoder"),
        ({"frames": 1, "motion_branch": {"enabled": True}}, "at least 2 frames"),
        ({"freeze_image_encoder": True, "freeze_text_encoder": True}, "nothing temporal"),
    ],
)
def test_video_options_that_cannot_work_are_refused(video, message):
    from pydantic import ValidationError

    from vlp.platform.spec.model import ModelSection

    with pytest.raises(ValidationError, match=message):
        ModelSection(arch="video", video=video)


TWO_PROCESS_CASES = [
    ({}, {"unified_contrastive_weight": 1.0, "masked_video": {"weight": 0.5}}),
    ({"local_loss": False}, {"contrastive_weight": 0.0, "unified_contrastive_weight": 1.0}),
    ({"local_loss": False, "gather_with_grad": False}, {"unified_contrastive_weight": 2.0}),
]


def test_two_processes_give_the_single_process_update_with_labels_across_ranks():
    """Same-class positives on the other process count: the gathered labels are every process's."""
    from two_process_gloo import run_on_two_processes
    from video_objective_workers import distributed_video_gradients, video_gradients

    rank0, rank1 = run_on_two_processes(distributed_video_gradients, TWO_PROCESS_CASES)
    for index, (objective_doc, video_doc) in enumerate(TWO_PROCESS_CASES):
        single = video_gradients(objective_doc, video_doc, None)
        for expected, got0, got1 in zip(single["grads"], rank0[index]["grads"], rank1[index]["grads"]):
            assert torch.allclose(got0, expected, atol=1e-6, rtol=1e-5), (index, expected, got0)
            assert torch.equal(got0, got1)
