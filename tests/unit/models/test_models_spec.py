"""The model and objective sections: documented, validated with one-line errors, and stable through JSON."""

from __future__ import annotations

import json

import pytest

from vlp.platform.errors import SpecError
from vlp.platform.spec import spec_from_dict
from vlp.platform.spec.model import ModelSection
from vlp.platform.spec.objective import ObjectiveSection

MINIMAL = {"name": "exp", "train": {"max_steps": 10}}


def sections(root):
    yield root
    for field in root.model_fields.values():
        annotation = field.annotation
        for candidate in getattr(annotation, "__args__", (annotation,)):
            if isinstance(candidate, type) and hasattr(candidate, "model_fields"):
                yield from sections(candidate)


@pytest.mark.parametrize("root", [ModelSection, ObjectiveSection])
def test_every_field_is_documented(root):
    for section in sections(root):
        for name, field in section.model_fields.items():
            assert field.description, f"{section.__name__}.{name}"


@pytest.mark.parametrize(
    "model, objective, expected",
    [
        ({"arch": "clip", "share": {"from_layer": 2}}, {}, "model.share applies to arch msclip or multiway, not clip"),
        ({"arch": "msclip", "coca": {"caption_weight": 1.0}}, {}, "model.coca applies to arch coca"),
        ({"arch": "clip", "pacl": {"freeze_backbone": True}}, {}, "model.pacl applies to arch pacl"),
        ({"pooling": "mean", "ggem": {"groups": 2}}, {}, "model.ggem applies only with model.pooling: ggem"),
        ({"arch": "pacl", "early_specialization": True}, {}, "do not apply to arch pacl"),
        ({"preset": "shapes-vit-tiny", "init_from": "/tmp/x.pt"}, {}, "set model.preset or model.init_from, not both"),
        ({"arch": "msclip", "init_from": {"open_clip": "ViT-B-32"}}, {}, "use them with arch clip, pacl, fusion, flava, transvg, video; not msclip"),
        ({"arch": "clip", "fusion": {"kind": "co_attention"}}, {}, "model.fusion applies to arch fusion or flava, not clip"),
        ({"arch": "fusion", "video": {"temporal_pooling": "transformer"}}, {}, "model.video applies to arch video, not fusion"),
        ({"init_from": "models:/name"}, {}, "expected models:/NAME@ALIAS or models:/NAME/VERSION"),
        ({"arch": "bert"}, {}, "model.arch: Input should be"),
        ({"coca": {"caption_weight": 0}, "arch": "coca"}, {}, "model.coca.caption_weight: Input should be greater than 0"),
        ({}, {"local_loss": True, "gather_with_grad": False}, "local_loss needs objective.gather_with_grad"),
        ({}, {"nlip": {"refresh_every": 5}}, "objective.nlip applies only with objective.noise: nlip"),
        ({}, {"contrastive": "triplet"}, "objective.contrastive: Input should be 'infonce' or 'siglip'"),
    ],
)
def test_mistakes_get_one_line_naming_the_field(model, objective, expected):
    with pytest.raises(SpecError) as caught:
        spec_from_dict({**MINIMAL, "model": model, "objective": objective})
    assert expected in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "model, objective",
    [
        ({"arch": "coca", "preset": "shapes-vit-micro", "coca": {"decoder_layers": 1}}, {"contrastive": "siglip"}),
        ({"arch": "pacl", "init_from": {"open_clip": "ViT-B-32", "checkpoint": "/w.pt"}, "pacl": {"freeze_backbone": True}}, {}),
        ({"arch": "msclip", "share": {"from_layer": 2}, "pooling": "ggem", "ggem": {"groups": 3}}, {"noise": "nlip", "nlip": {"refresh_every": 5}}),
    ],
)
def test_a_spec_survives_the_json_round_trip_every_pipeline_step_makes(model, objective):
    spec = spec_from_dict({**MINIMAL, "model": model, "objective": objective})
    again = spec_from_dict(json.loads(spec.canonical_json()))
    assert again == spec and again.spec_hash() == spec.spec_hash()


def test_share_defaults_differ_by_architecture():
    assert ModelSection(arch="msclip").shared_from_layer == 1
    assert ModelSection(arch="multiway").shared_from_layer == 0
    assert ModelSection(arch="multiway", share={"from_layer": 3}).shared_from_layer == 3


@pytest.mark.parametrize("augment", [{"scale": [0.5, 1.0]}, {"enabled": True}])
def test_transvg_refuses_an_augmentation_the_file_asks_for(augment):
    with pytest.raises(SpecError) as caught:
        spec_from_dict({**MINIMAL, "model": {"arch": "transvg"}, "data": {"augment": augment}})
    message = str(caught.value)
    assert message.startswith("experiment: data.augment: arch transvg trains on the evaluation geometry") and "\n" not in message


def test_transvg_without_an_augment_section_or_with_it_off_is_valid():
    for data in ({}, {"augment": None}, {"augment": {"enabled": False}}):
        spec_from_dict({**MINIMAL, "model": {"arch": "transvg"}, "data": data})
