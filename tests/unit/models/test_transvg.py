"""arch transvg: TransVG (fusion stack + [REG]) and TransVG++ (language-conditioned ViT) on tiny presets."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import box_iou

from vlp.platform.errors import SpecError
from vlp.workloads.data.box_geometry import eval_box_mapping
from vlp.workloads.data.image_transforms import ImageTransform
from vlp.workloads.data.shapes import ShapesParams, render_sample
from vlp.workloads.models.catalog import load_model_cfg
from vlp.workloads.models.factory import build_model_from_cfg
from vlp.workloads.models.weights import Weights, load_weights
from vlp.workloads.objectives.box_regression import BoxRegressionLoss

EXPRESSIONS = ["the large red circle", "the shape left of the blue square", "the star", "the small one"]


def transvg(preset: str = "shapes-vit-micro", **options):
    cfg = load_model_cfg(preset)
    cfg["vlp"] = {"arch": "transvg", "pooling": "cls", "transvg": options}
    return build_model_from_cfg(cfg)


@pytest.mark.parametrize("preset, options", [
    ("shapes-vit-micro", {}),
    ("shapes-rn-tiny", {"fusion_width": 32, "fusion_heads": 2}),
    ("shapes-vit-micro", {"language_conditioned": True}),
])
def test_boxes_are_normalised_corners_and_every_trainable_parameter_learns(preset, options):
    built = transvg(preset, **options)
    images, texts = torch.randn(4, 3, 32, 32), built.tokenizer(EXPRESSIONS)
    outputs = built.model(images, texts)
    boxes = outputs["boxes"]
    assert boxes.shape == (4, 4)
    assert torch.all(boxes[:, 2:] >= boxes[:, :2])
    BoxRegressionLoss()(outputs, {"box": torch.tensor([[0.1, 0.2, 0.5, 0.6]] * 4)}).backward()
    # Data-parallel training waits for a gradient of every trainable parameter: none may be left out.
    assert [name for name, p in built.model.named_parameters() if p.requires_grad and p.grad is None] == []
    predicted = built.model.predict_boxes(images, texts)
    assert predicted.min() >= 0 and predicted.max() <= 1


def test_the_expression_changes_the_box():
    for options in ({}, {"language_conditioned": True}):
        built = transvg(**options)
        built.model.eval()
        image = torch.randn(1, 3, 32, 32).expand(len(EXPRESSIONS), -1, -1, -1)
        boxes = built.model.predict_boxes(image, built.tokenizer(EXPRESSIONS))
        assert not torch.allclose(boxes[0], boxes[1])


def test_language_conditioning_needs_a_vit_and_fits_its_depth():
    with pytest.raises(SpecError, match="language_conditioned.*ViT"):
        transvg("shapes-rn-tiny", language_conditioned=True)
    with pytest.raises(SpecError, match="conditioned_layers 3"):
        transvg(language_conditioned=True, conditioned_layers=3)


def test_freezing_the_towers_leaves_the_fusion_and_head_to_train():
    def trainable(**options) -> set[str]:
        model = transvg(**options).model
        return {".".join(name.split(".")[:2]) if name.startswith("backbone.") else name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}

    fusion_and_head = {"visual_in", "text_in", "reg_token", "position", "fusion", "box_head"}
    text_tower = {"backbone.token_embedding", "backbone.positional_embedding", "backbone.transformer", "backbone.ln_final"}
    assert trainable(freeze_image_tower=True, freeze_text_tower=True) == fusion_and_head
    assert trainable(freeze_image_tower=True) == fusion_and_head | text_tower
    assert trainable(freeze_text_tower=True) == fusion_and_head | {"backbone.visual"}
    assert trainable(language_conditioned=True, freeze_image_tower=True, freeze_text_tower=True) == {"prompters", "reg_token", "box_head"}


def test_a_clip_checkpoint_fills_the_towers():
    clip_cfg = load_model_cfg("shapes-vit-micro")
    clip = build_model_from_cfg(clip_cfg).model
    built = transvg()
    load_weights(built.model, Weights("clip.pt", clip_cfg, clip.state_dict()), "transvg")
    images, texts = torch.randn(2, 3, 32, 32), built.tokenizer(EXPRESSIONS[:2])
    clip.eval(), built.model.eval()
    assert torch.equal(built.model.encode_image(images), clip.encode_image(images))
    assert torch.equal(built.model.encode_text(texts), clip.encode_text(texts))


def _grounding_batch(built, samples: int, seed: int):
    """Single-object shapes scenes: (input pixels, tokens of the expressions, their normalised input boxes)."""
    params = ShapesParams(samples=samples, seed=seed, image_size=32, max_objects=1)
    transform = ImageTransform(built.preprocess)
    mapping = eval_box_mapping(32, 32, built.preprocess)
    pixels, texts, boxes = [], [], []
    for index in range(samples):
        sample = render_sample(params, index)
        refexp = sample["json"]["refexps"][0]
        pixels.append(transform(sample["png"]))
        texts.append(refexp["expression"])
        boxes.append(mapping.to_input(torch.tensor([refexp["box"]], dtype=torch.float))[0])
    return torch.stack(pixels), built.tokenizer(texts), torch.stack(boxes)


@pytest.mark.usefixtures("one_thread")
def test_a_tiny_transvg_beats_the_best_constant_box_within_a_few_dozen_steps():
    torch.manual_seed(0)
    built = transvg(fusion_width=32, fusion_heads=2, dropout=0.0)
    pixels, tokens, boxes = _grounding_batch(built, 320, seed=0)
    train, test = slice(0, 256), slice(256, 320)
    loss_fn = BoxRegressionLoss()
    optimizer = torch.optim.AdamW([p for p in built.model.parameters() if p.requires_grad], lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(40):
        rows = torch.randint(0, 256, (32,), generator=generator)
        loss = loss_fn(built.model(pixels[rows], tokens[rows]), {"box": boxes[rows]})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    built.model.eval()
    learned = box_iou(built.model.predict_boxes(pixels[test], tokens[test]), boxes[test]).diagonal().mean()
    constant = boxes[train].mean(dim=0, keepdim=True).expand(64, 4)
    best_constant = box_iou(constant, boxes[test]).diagonal().mean()
    assert learned > best_constant + 0.05, (float(learned), float(best_constant))


def test_options_for_the_other_variant_are_refused_by_name():
    from pydantic import ValidationError

    from vlp.platform.spec.grounding import TransVGOptions

    with pytest.raises(ValidationError, match="model.transvg.prompt_tokens applies only to TransVG\\+\\+"):
        TransVGOptions(prompt_tokens=8)
    with pytest.raises(ValidationError, match="model.transvg.fusion_layers applies only to TransVG's fusion stack"):
        TransVGOptions(language_conditioned=True, fusion_layers=4)
    with pytest.raises(ValidationError, match="fusion_width 100 is not a multiple of fusion_heads 3"):
        TransVGOptions(fusion_width=100, fusion_heads=3)
    with pytest.raises(ValidationError, match="nothing would train the box"):
        TransVGOptions(l1_weight=0, giou_weight=0)
    assert TransVGOptions.model_validate(TransVGOptions(language_conditioned=True, conditioned_layers=1).model_dump(mode="json")).conditioned_layers == 1
