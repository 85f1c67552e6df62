"""What run_suite adds around the image battery: plain-CLIP patch maps for segmentation, the grounding baseline for
a dual encoder on data with referring expressions, and the hand-over to the grounding battery for box regressors."""

from __future__ import annotations

import pytest
import torch
from colour_toy import write_shards

from vlp.platform.spec.evaluation import EvalSection
from vlp.platform.spec.model import ModelSection
from vlp.workloads.data.readers import ReaderOptions, open_source
from vlp.workloads.data.shapes import ShapesParams, generate_shapes
from vlp.workloads.evaluation.segmentation import ViTPatchSimilarity, patch_similarity
from vlp.workloads.evaluation.suite import run_suite
from vlp.workloads.models.catalog import load_model_cfg
from vlp.workloads.models.factory import BuiltModel, build_model_from_cfg, compose_model_cfg

pytestmark = pytest.mark.usefixtures("one_thread")
ONLY_SEGMENTATION = EvalSection(templates=("a {} square",), batch_size=8, zeroshot=False, retrieval=False, linear_probe=False, modality_gap=False,
                                per_domain=False, vqa=False, itm_rerank=False, grounding=False)


def micro(arch: str, **options) -> BuiltModel:
    torch.manual_seed(0)
    return build_model_from_cfg(compose_model_cfg(ModelSection(arch=arch, preset="shapes-vit-micro", **options), load_model_cfg("shapes-vit-micro")))


def test_a_plain_vit_clip_segments_by_its_projected_patch_tokens_as_pacl_does_at_initialisation():
    """PACL's patch embedder starts as the identity, so at initialisation its maps are its backbone's plain maps."""
    pacl = micro("pacl").model
    images, texts = torch.randn(2, 3, 32, 32), torch.randn(3, 32)
    plain = patch_similarity(pacl.backbone)
    assert isinstance(plain, ViTPatchSimilarity)
    torch.testing.assert_close(plain.patch_text_similarity(images, texts), pacl.patch_text_similarity(images, texts))
    assert patch_similarity(pacl) is pacl  # a model's own maps win
    for arch, options in (("clip", {}), ("clip", {"pooling": "ggem"}), ("msclip", {})):
        assert isinstance(patch_similarity(micro(arch, **options).model), ViTPatchSimilarity)
    rn = build_model_from_cfg(compose_model_cfg(ModelSection(arch="clip", preset="shapes-rn-tiny"), load_model_cfg("shapes-rn-tiny")))
    assert patch_similarity(rn.model) is None


def test_the_suite_scores_a_plain_clip_on_segmentation(tmp_path):
    source = open_source(str(write_shards(tmp_path / "wds", 8)), options=ReaderOptions(label_field="colour"))
    output = run_suite(micro("clip"), source, ONLY_SEGMENTATION, "clip")
    (result,) = output.results
    assert result["task"] == "zeroshot_segmentation" and result["metrics"]["images"] == 8 and 0 <= result["metrics"]["miou"] <= 1


@pytest.fixture(scope="module")
def shapes_with_expressions(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    generate_shapes(ShapesParams(samples=24, seed=3, image_size=32, max_objects=2, shard_size=24), str(root), processes=1)
    return open_source(str(root), options=ReaderOptions(label_field="shape"))


def test_a_dual_encoder_on_data_with_referring_expressions_gets_the_grounding_baseline(shapes_with_expressions):
    section = ONLY_SEGMENTATION.model_copy(update={"segmentation": False, "grounding": True})
    output = run_suite(micro("clip"), shapes_with_expressions, section, "clip")
    (result,) = output.results
    assert result["task"] == "visual_grounding" and result["metrics"]["num_expressions"] > 0 and 0 <= result["metrics"]["acc@0.5"] <= 1
    without_vit = build_model_from_cfg(compose_model_cfg(ModelSection(arch="clip", preset="shapes-rn-tiny"), load_model_cfg("shapes-rn-tiny")))
    assert "needs a ViT image tower" in run_suite(without_vit, shapes_with_expressions, section, "rn").skipped["visual_grounding"]


def test_a_box_regressor_gets_the_grounding_battery_only(shapes_with_expressions):
    class Corners(torch.nn.Module):
        def predict_boxes(self, images, texts):
            return torch.tensor([[0.0, 0.0, 1.0, 1.0]]).expand(len(images), 4)

    clip = micro("clip")
    regressor = BuiltModel(Corners(), {"vlp": {"arch": "transvg"}}, clip.tokenizer, clip.preprocess)
    output = run_suite(regressor, shapes_with_expressions, EvalSection(), "corners")
    assert [result["task"] for result in output.results] == ["visual_grounding"]
    assert output.results[0]["metrics"]["miou"] < 0.5  # the whole image is never a shape's box
