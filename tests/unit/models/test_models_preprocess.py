"""The model's image preprocessing: open_clip's released settings by pretrained tag, and spec overrides."""

from __future__ import annotations

import open_clip
import pytest

from vlp.platform.errors import SpecError
from vlp.platform.spec.model import ModelSection
from vlp.workloads.data.image_transforms import ImagePreprocess
from vlp.workloads.models.factory import build_model
from vlp.workloads.models.weights import open_clip_weights


def test_a_pretrained_tag_brings_the_preprocessing_open_clip_uses_for_it():
    weights = open_clip_weights("ViT-B-16-SigLIP", pretrained="webli")
    ours = ImagePreprocess.from_model_cfg(weights.model_cfg)
    released = open_clip.get_pretrained_cfg("ViT-B-16-SigLIP", "webli")
    assert (ours.mean, ours.std) == (tuple(released["mean"]), tuple(released["std"]))
    assert (ours.resize_mode, ours.interpolation, ours.size) == ("squash", "bicubic", (224, 224))


def test_an_unknown_pretrained_tag_is_one_line_naming_the_known_ones():
    with pytest.raises(SpecError, match=r"model.init_from.pretrained: ViT-B-16-SigLIP has no pretrained tag 'openai' \(known: webli\)"):
        open_clip_weights("ViT-B-16-SigLIP", pretrained="openai")


def test_spec_overrides_reach_the_built_model_and_keep_the_rest():
    section = ModelSection(preset="shapes-vit-micro", preprocess={"mean": [0.5, 0.5, 0.5], "resize_mode": "squash"})
    built = build_model(section)
    assert built.preprocess.mean == (0.5, 0.5, 0.5)
    assert built.preprocess.resize_mode == "squash"
    default = build_model(ModelSection(preset="shapes-vit-micro")).preprocess
    assert (built.preprocess.std, built.preprocess.interpolation, built.preprocess.size) == (default.std, default.interpolation, default.size)
    # Stored with the model: a rebuild from the checkpoint's model_cfg sees the same preprocessing.
    assert ImagePreprocess.from_model_cfg(built.model_cfg) == built.preprocess


def test_a_non_positive_std_is_refused():
    with pytest.raises(ValueError, match="model.preprocess.std: every value must be positive"):
        ModelSection(preprocess={"std": [0.5, 0.0, 0.5]})
