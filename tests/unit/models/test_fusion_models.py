"""The fusion architectures (fusion: METER co-attention / merged; flava; BEiT-3 masked data modeling on multiway):
outputs and their shapes, training lowers every term on a tiny batch, tied and shared parameters are counted once,
a checkpoint round-trips through build_model_from_cfg, and bad settings are refused with a message naming the field."""

from __future__ import annotations

import pytest
import torch

from vlp.platform.errors import SpecError
from vlp.platform.spec.model import ModelSection
from vlp.platform.spec.objective import ObjectiveSection
from vlp.workloads.models.catalog import load_model_cfg
from vlp.workloads.models.factory import build_model_from_cfg, compose_model_cfg
from vlp.workloads.models.fusion import TiedVocabularyHead
from vlp.workloads.models.tying import count_parameters, count_shared_parameters
from vlp.workloads.objectives.factory import build_objective

CAPTIONS = ["a red circle", "a blue square", "two green stars", "a large yellow triangle", "a red circle", "a star"]
MICRO = "shapes-vit-micro"  # width 32, patch 8 on 32 px: 16 patches, 24 text positions


def built_model(model_doc: dict):
    section = ModelSection(**model_doc)
    torch.manual_seed(0)
    return build_model_from_cfg(compose_model_cfg(section, load_model_cfg(section.preset))), section


def batch(built, size: int = 6):
    images = torch.randn(size, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    return images, built.tokenizer(CAPTIONS[:size])


def masked_count(texts):
    from vlp.workloads.models.masking import content_positions

    return content_positions(texts).sum()


@pytest.mark.parametrize("kind", ["co_attention", "merged"])
def test_fusion_outputs_and_interfaces(kind):
    built, _ = built_model({"arch": "fusion", "preset": MICRO, "fusion": {"kind": kind, "mim_weight": 1.0, "alignment_weight": 1.0}})
    model = built.model
    images, texts = batch(built)
    torch.manual_seed(2)
    outputs = model(images, texts)
    assert outputs["image_features"].shape == outputs["text_features"].shape == (6, 32)
    assert outputs["itm_logits"].shape == (18, 2) and outputs["itm_labels"].tolist() == [1] * 6 + [0] * 12
    masked_tokens = outputs["mlm_labels"].shape[0]
    assert outputs["mlm_logits"].shape == (masked_tokens, 49408) and 0 < masked_tokens <= masked_count(texts)
    masked_patches = outputs["mim_patches"].shape[0]
    assert masked_patches == 6 * (16 - int(16 * 0.6))  # MAE's count: int(P * (1 - ratio)) patches kept
    assert outputs["mim_predictions"].shape == outputs["mim_patches"].shape == (masked_patches, 8 * 8 * 3)
    assert outputs["alignment_patches"].shape == (6, 16, 32) and outputs["alignment_tokens"].shape == (6, 24, 32)
    assert model.fused_cls(images, texts).shape == (6, 32)
    assert model.itm_logits(images, texts).shape == (6,)
    assert model.encode_image(images, normalize=True).shape == model.encode_text(texts, normalize=True).shape == (6, 32)


def test_flava_has_unimodal_and_multimodal_terms():
    built, section = built_model({"arch": "flava", "preset": MICRO})
    outputs = built.model(*batch(built))
    for key in ("itm_logits", "mlm_logits", "mim_predictions", "unimodal_mlm_logits", "unimodal_mim_predictions"):
        assert key in outputs
    assert built.model.settings.kind == "merged" and built.model.settings.itm_negatives == "hard"
    # FLAVA masks both modalities in one pass: MLM and MIM of the multimodal encoder predict the same masked inputs
    # as the unimodal heads.
    assert torch.equal(outputs["mlm_labels"], outputs["unimodal_mlm_labels"])
    assert torch.equal(outputs["mim_patches"], outputs["unimodal_mim_patches"])


def test_fusion_on_a_resnet_tower():
    built, _ = built_model({"arch": "fusion", "preset": "shapes-rn-tiny"})
    images, texts = batch(built)
    outputs = built.model(images, texts)
    assert outputs["itm_logits"].shape == (18, 2)
    # One token summarising the final feature map, then its positions (1 x 1 at 32 px).
    _, tokens = built.model.image(images)
    assert tokens.shape == (6, 2, 16 * 32)


def test_beit3_outputs():
    built, _ = built_model({"arch": "multiway", "preset": MICRO, "masked_modeling": {"enabled": True, "image_masking": "block"}})
    model = built.model
    images, texts = batch(built)
    outputs = model(images, texts)
    assert "image_features" not in outputs  # no contrastive term by default (BEiT-3)
    assert torch.equal(outputs["text_mlm_labels"], outputs["pair_mlm_labels"])
    assert outputs["pair_mim_predictions"].shape == outputs["image_mim_patches"].shape
    assert model.encode_text(texts).shape == model.encode_image(images).shape == (6, 32)


TRAINING = [
    {"arch": "fusion", "preset": MICRO, "fusion": {"kind": "co_attention"}},
    {"arch": "fusion", "preset": MICRO, "fusion": {"kind": "merged", "mim_weight": 1.0, "alignment_weight": 1.0}},
    {"arch": "flava", "preset": MICRO},
    {"arch": "multiway", "preset": MICRO, "masked_modeling": {"enabled": True, "contrastive_weight": 1.0}},
]


@pytest.mark.parametrize("model_doc", TRAINING, ids=lambda doc: f"{doc['arch']}-{doc.get('fusion', {}).get('kind', '')}")
def test_every_term_decreases_on_a_tiny_batch(model_doc):
    built, section = built_model(model_doc)
    model = built.model
    objective = build_objective(ObjectiveSection(), section)
    images, texts = batch(built)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    history = []
    for _ in range(12):
        torch.manual_seed(3)  # the same masks and negatives every step: a fixed problem to fit
        loss = objective(model(images, texts), {})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(objective.metrics())
    for name in history[0]:
        assert history[-1][name] < history[0][name], (name, history[0][name], history[-1][name])


def test_tied_vocabulary_head_owns_no_vocabulary_matrix():
    head = TiedVocabularyHead(width=64, text_width=32, vocab_size=100)
    assert count_parameters(head) == 64 * 32 + 32 + 2 * 32 + 100
    embedding = torch.randn(101, 32)  # one more row: [MASK], never predicted
    assert head(torch.randn(5, 64), embedding).shape == (5, 100)


def test_parameter_counts_count_tied_and_shared_modules_once():
    built, _ = built_model({"arch": "flava", "preset": MICRO})
    model = built.model
    vocabulary_sized = [name for name, p in model.named_parameters() if p.ndim == 2 and p.shape[0] >= 49408]
    assert vocabulary_sized == ["text.tower.token_embedding.weight"]  # both MLM heads decode with it
    parts = sum(count_parameters(module) for module in model.children()) + model.logit_scale.numel()
    assert count_parameters(model) == parts
    multiway, _ = built_model({"arch": "multiway", "preset": MICRO, "masked_modeling": {"enabled": True}})
    attention = sum(count_parameters(block.attn) for block in multiway.model.backbone.visual.transformer.resblocks)
    assert count_shared_parameters(multiway.model) == attention


def test_unused_unimodal_heads_are_frozen_without_a_contrastive_term():
    built, _ = built_model({"arch": "fusion", "preset": MICRO})
    model = built.model
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"logit_scale", "image.visual.proj", "text.tower.text_projection"}


@pytest.mark.parametrize("model_doc", TRAINING[1:], ids=lambda doc: doc["arch"])
def test_checkpoint_round_trips(model_doc):
    built, _ = built_model(model_doc)
    state = {key: value.clone() for key, value in built.model.state_dict().items()}
    rebuilt = build_model_from_cfg(built.model_cfg)
    rebuilt.model.load_state_dict(state)
    images, texts = batch(built)
    for model in (built.model, rebuilt.model):
        torch.manual_seed(4)
        model.outputs = model(images, texts)
    for key, value in built.model.outputs.items():
        assert torch.equal(value, rebuilt.model.outputs[key]), key


@pytest.mark.parametrize(
    ("model_doc", "message"),
    [
        ({"arch": "fusion", "preset": "shapes-rn-tiny", "fusion": {"mim_weight": 1.0}}, "mim_weight and unimodal_mim_weight need a ViT image tower"),
        ({"arch": "flava", "preset": "shapes-rn-tiny"}, "need a ViT image tower"),
        ({"arch": "fusion", "preset": "shapes-rn-tiny", "fusion": {"alignment_weight": 1.0}}, "alignment_weight aligns patches"),
        ({"arch": "fusion", "preset": MICRO, "fusion": {"itm_negatives": "hard"}}, "itm_negatives hard .* needs model.fusion.contrastive_weight > 0"),
        ({"arch": "fusion", "preset": MICRO, "masked_modeling": {"enabled": True}}, "masked_modeling.enabled applies to arch multiway"),
        ({"arch": "fusion", "preset": MICRO, "fusion": {"itm_weight": 0, "mlm_weight": 0}}, "every loss weight is 0"),
        ({"arch": "fusion", "preset": MICRO, "fusion": {"itm_weight": 0}}, "co_attention with itm_weight 0 needs mlm_weight and mim_weight"),
        ({"arch": "multiway", "preset": MICRO, "masked_modeling": {"enabled": True, "vl_expert_layers": 3}}, "vl_expert_layers 3"),
    ],
)
def test_bad_settings_are_refused_at_build(model_doc, message):
    with pytest.raises(SpecError, match=message):
        built_model(model_doc)


@pytest.mark.parametrize(
    ("model_doc", "message"),
    [
        ({"arch": "clip", "fusion": {"kind": "merged"}}, "model.fusion applies to arch fusion or flava, not clip"),
        ({"arch": "fusion", "fusion": {"width": 64, "heads": 3}}, "model.fusion.width 64 must be a multiple of model.fusion.heads 3"),
        ({"arch": "fusion", "fusion": {"itm_negatives": "hard", "contrastive_weight": 0}}, "needs model.fusion.contrastive_weight > 0"),
        ({"arch": "flava", "masked_modeling": {"mask_token_share": 0.9, "random_token_share": 0.2}}, "must be at most 1"),
    ],
)
def test_bad_sections_are_refused_by_the_spec(model_doc, message):
    from vlp.platform.spec import spec_from_dict

    with pytest.raises(SpecError, match=message):
        spec_from_dict({"name": "x", "train": {"max_steps": 1}, "model": model_doc})

