"""The fusion objectives: MIM's targets are MAE's, ITM's negatives never pick the positive and follow the similarity,
FILIP's late interaction equals its definition, and the combined objective weighs and reports its terms."""

from __future__ import annotations

import pytest
import torch

from vlp.platform.spec.model import ModelSection
from vlp.platform.spec.objective import ObjectiveSection
from vlp.workloads.objectives.itm import negative_candidates, sample_negatives
from vlp.workloads.objectives.mim import MaskedImageModelingLoss, normalized_pixels, patchify
from vlp.workloads.objectives.patch_token_alignment import image_to_text, text_to_image


def mae_patchify(imgs, p):
    """MAE's MaskedAutoencoderViT.patchify (models_mae.py)."""
    h = w = imgs.shape[2] // p
    x = imgs.reshape(shape=(imgs.shape[0], 3, h, p, w, p))
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(shape=(imgs.shape[0], h * w, p**2 * 3))


def mae_forward_loss(imgs, pred, mask, p):
    """MAE's MaskedAutoencoderViT.forward_loss with norm_pix_loss=True."""
    target = mae_patchify(imgs, p)
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    target = (target - mean) / (var + 1.0e-6) ** 0.5
    loss = (pred - target) ** 2
    loss = loss.mean(dim=-1)
    return (loss * mask).sum() / mask.sum()


def test_mim_targets_and_loss_equal_mae():
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(3, 3, 32, 32, generator=generator)
    predictions = torch.randn(3, 16, 8 * 8 * 3, generator=generator)
    mask = torch.rand(3, 16, generator=generator) > 0.5
    assert torch.equal(patchify(images, 8), mae_patchify(images, 8))
    patches = patchify(images, 8)
    expected = mae_forward_loss(images, predictions, mask.float(), 8)
    got = MaskedImageModelingLoss(norm_pix_loss=True)(predictions[mask], patches[mask])
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.allclose(normalized_pixels(patches).mean(dim=-1), torch.zeros(3, 16), atol=1e-5)


def test_itm_negatives_never_pick_the_positive_or_an_equal_caption():
    texts = torch.tensor([[1, 2], [1, 2], [3, 4], [5, 6], [7, 8], [9, 9]])
    allowed = negative_candidates(texts)
    assert not bool(allowed.diagonal().any())
    assert not allowed[0, 1] and not allowed[1, 0]
    generator = torch.Generator().manual_seed(0)
    similarity = torch.randn(6, 6, generator=generator) * 3
    for _ in range(200):
        text_for_image, image_for_text = sample_negatives(similarity, allowed, generator)
        assert bool(allowed[torch.arange(6), text_for_image].all())
        assert bool(allowed[torch.arange(6), image_for_text].all())


def test_hard_negatives_follow_the_similarity():
    similarity = torch.tensor([[5.0, 3.0, 1.0, 0.0], [0.0, 5.0, 2.0, 2.0], [1.0, 0.0, 5.0, 0.0], [0.0, 0.0, 4.0, 5.0]])
    allowed = ~torch.eye(4, dtype=torch.bool)
    generator = torch.Generator().manual_seed(0)
    draws = 4000
    counts = torch.zeros(4, 4)
    for _ in range(draws):
        text_for_image, _ = sample_negatives(similarity, allowed, generator)
        counts[torch.arange(4), text_for_image] += 1
    expected = torch.softmax(similarity.masked_fill(~allowed, float("-inf")), dim=1)
    assert torch.allclose(counts / draws, expected, atol=0.03)


def test_patch_token_alignment_equals_its_definition():
    generator = torch.Generator().manual_seed(0)
    patches = torch.nn.functional.normalize(torch.randn(3, 5, 4, generator=generator), dim=-1)
    tokens = torch.nn.functional.normalize(torch.randn(2, 6, 4, generator=generator), dim=-1)
    mask = torch.tensor([[False, True, True, True, False, False], [False, True, False, False, False, False]])
    i2t, t2i = image_to_text(patches, tokens, mask), text_to_image(patches, tokens, mask)
    for i in range(3):
        for j in range(2):
            words = tokens[j][mask[j]]
            similarity = patches[i] @ words.T
            assert torch.isclose(i2t[i, j], similarity.max(dim=1).values.mean(), atol=1e-6)
            assert torch.isclose(t2i[i, j], similarity.max(dim=0).values.mean(), atol=1e-6)


@pytest.mark.parametrize(
    ("model_doc", "terms"),
    [
        ({"arch": "fusion"}, ["itm", "mlm"]),
        ({"arch": "flava"}, ["contrastive", "itm", "mlm", "mim", "unimodal_mlm", "unimodal_mim"]),
        ({"arch": "fusion", "fusion": {"mim_weight": 0.5, "alignment_weight": 0.2, "mlm_weight": 0}}, ["itm", "mim", "alignment"]),
        ({"arch": "multiway", "masked_modeling": {"enabled": True}}, ["image_mim", "text_mlm", "pair_mlm", "pair_mim"]),
    ],
)
def test_objective_terms_follow_the_weights(model_doc, terms):
    from vlp.workloads.objectives.factory import build_objective

    objective = build_objective(ObjectiveSection(), ModelSection(**model_doc))
    assert list(objective.weights) == terms


def test_objective_sums_weighted_terms_and_reports_each():
    from vlp.workloads.objectives.fusion_pretraining import FusionPretrainingObjective

    objective = FusionPretrainingObjective({"itm": 2.0, "mlm": 0.5}, ObjectiveSection())
    outputs = {
        "itm_logits": torch.tensor([[0.0, 2.0], [1.0, 0.0], [0.5, 0.5]]),
        "itm_labels": torch.tensor([1, 0, 0]),
        "mlm_logits": torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
        "mlm_labels": torch.tensor([0, 1]),
    }
    itm = torch.nn.functional.cross_entropy(outputs["itm_logits"], outputs["itm_labels"])
    mlm = torch.nn.functional.cross_entropy(outputs["mlm_logits"], outputs["mlm_labels"])
    assert torch.isclose(objective(outputs, {}), 2.0 * itm + 0.5 * mlm)
    assert objective.metrics() == pytest.approx({"train/loss_itm": float(itm), "train/loss_mlm": float(mlm)})


def test_noise_harmonization_is_refused_for_fusion_archs():
    from vlp.platform.errors import SpecError
    from vlp.workloads.objectives.factory import build_objective

    with pytest.raises(SpecError, match="objective.noise nlip"):
        build_objective(ObjectiveSection(noise="nlip"), ModelSection(arch="flava"))
