"""Grounding evaluation: the box mapping between stored image and model input, the metrics, the patch-region
baseline, the suite end to end on generated shapes."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import box_iou, generalized_box_iou
from torchvision.transforms import InterpolationMode

from vlp.platform.spec.evaluation import EvalSection
from vlp.workloads.data.box_geometry import eval_box_mapping
from vlp.workloads.data.image_transforms import MASK_PADDING, ImagePreprocess, resize_and_crop
from vlp.workloads.data.readers import EvalRecord, EvalSource
from vlp.workloads.data.shapes import ShapesParams, render_sample
from vlp.workloads.evaluation.grounding import (
    ACCURACY, TASK, ground_records, grounding_metrics, image_size, predict_boxes_for, region_boxes, run_grounding_suite,
)
from vlp.workloads.evaluation.publish import flat_metrics
from vlp.workloads.models.catalog import load_model_cfg
from vlp.workloads.models.factory import build_model_from_cfg
from vlp.workloads.objectives.box_regression import BoxRegressionLoss

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _coordinate_image(height: int, width: int, axis: int) -> torch.Tensor:
    """1×H×W uint8 whose every pixel holds its column (axis 1) or row (axis 0) index."""
    index = torch.arange(width if axis == 1 else height, dtype=torch.uint8)
    return (index.expand(height, width) if axis == 1 else index[:, None].expand(height, width))[None].contiguous()


@pytest.mark.parametrize("mode", ["shortest", "longest", "squash"])
@pytest.mark.parametrize("target", [(32, 32), (24, 40)])
@pytest.mark.parametrize("stored", [(32, 32), (40, 64), (64, 37), (23, 50), (97, 97)])
def test_box_mapping_follows_the_transform_pixel_for_pixel(mode, target, stored):
    """Nearest-exact resampling takes each output pixel from the source pixel its centre maps back into: the
    mapping's inverse of every output pixel centre must land in exactly the source row/column the transform took."""
    preprocess = ImagePreprocess(size=target, mean=MEAN, std=STD, resize_mode=mode)
    mapping = eval_box_mapping(*stored, preprocess)
    for axis, scale, shift, length in ((1, mapping.scale_x, mapping.shift_x, stored[1]), (0, mapping.scale_y, mapping.shift_y, stored[0])):
        cut = resize_and_crop(_coordinate_image(*stored, axis), preprocess, InterpolationMode.NEAREST_EXACT, MASK_PADDING)[0]
        assert tuple(cut.shape) == target
        line = cut[target[0] // 2] if axis == 1 else cut[:, target[1] // 2]  # through the middle: clear of the other axis's padding
        exact = (torch.arange(len(line), dtype=torch.double) + 0.5 - shift) / scale
        source = torch.floor(exact).long()
        padded = line == MASK_PADDING
        assert torch.equal(padded, (source < 0) | (source >= length))
        # A centre that maps exactly onto a pixel edge may go either way in the resampler's float arithmetic.
        on_edge = (exact - exact.round()).abs() < 1e-6
        taken = line.long()
        assert torch.all((taken == source) | (on_edge & (taken == source - 1)) | padded)


@pytest.mark.parametrize("mode", ["shortest", "longest", "squash"])
def test_boxes_go_to_the_input_and_back_unchanged(mode):
    preprocess = ImagePreprocess(size=(32, 32), mean=MEAN, std=STD, resize_mode=mode)
    mapping = eval_box_mapping(40, 64, preprocess)
    boxes = torch.tensor([[20.0, 5.0, 30.0, 17.0], [16.0, 0.0, 48.0, 40.0]], dtype=torch.double)
    normalised = mapping.to_input(boxes)
    assert normalised.min() >= 0 and normalised.max() <= 1
    assert torch.allclose(mapping.to_image(normalised), boxes, atol=1e-9)


def test_accuracy_at_half_iou_and_mean_iou_on_known_boxes():
    true = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], dtype=torch.double)
    predicted = torch.tensor([
        [0, 0, 10, 10],   # IoU 1
        [0, 0, 10, 5],    # IoU 0.5: counts (>= 0.5)
        [5, 0, 15, 10],   # IoU 50 / 150 = 1/3
        [0, 0, 10, 10],   # IoU 0
    ], dtype=torch.double)
    metrics = grounding_metrics(predicted, true, ["attribute", "relation", "relation", "position"])
    assert metrics[ACCURACY] == pytest.approx(0.5)
    assert metrics["miou"] == pytest.approx((1 + 0.5 + 1 / 3 + 0) / 4)
    assert metrics["num_expressions"] == 4
    assert metrics[f"{ACCURACY}/attribute"] == 1.0
    assert metrics[f"{ACCURACY}/relation"] == 0.5
    assert metrics[f"{ACCURACY}/position"] == 0.0


def test_box_regression_loss_is_l1_on_centre_size_plus_torchvisions_giou():
    predicted = torch.tensor([[0.1, 0.2, 0.5, 0.6], [0.3, 0.3, 0.9, 0.8]])
    true = torch.tensor([[0.2, 0.2, 0.6, 0.7], [0.0, 0.1, 0.4, 0.5]])
    loss_fn = BoxRegressionLoss(l1_weight=5.0, giou_weight=2.0)
    loss = loss_fn({"boxes": predicted}, {"box": true})
    centre_size = lambda b: torch.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], dim=1)
    l1 = (centre_size(predicted) - centre_size(true)).abs().sum(dim=1).mean()
    giou = (1 - generalized_box_iou(predicted, true).diagonal()).mean()
    metrics = loss_fn.metrics()
    assert metrics["train/loss_l1"] == pytest.approx(float(l1), abs=1e-6)
    assert metrics["train/loss_giou"] == pytest.approx(float(giou), abs=1e-6)
    assert metrics["train/iou"] == pytest.approx(float(box_iou(predicted, true).diagonal().mean()), abs=1e-6)
    assert float(loss) == pytest.approx(float(5 * l1 + 2 * giou), abs=1e-5)


def test_baseline_box_is_the_region_around_the_best_patch():
    maps = torch.zeros(2, 8, 8)
    maps[0, 2:5, 1:4] = 1.0      # the best region: columns 1-3, rows 2-4
    maps[0, 3, 2] = 1.2          # its peak
    maps[0, 6:8, 5:8] = 0.9      # a second region above the threshold, not connected to the peak
    maps[1] = 0.3                # a flat map: nothing stands out, the whole image
    boxes = region_boxes(maps, (8, 8), threshold=0.5)
    assert boxes[0].tolist() == pytest.approx([1 / 8, 2 / 8, 4 / 8, 5 / 8])
    assert boxes[1].tolist() == [0.0, 0.0, 1.0, 1.0]
    upsampled = region_boxes(maps[:1], (32, 32), threshold=0.5)  # bilinear to pixels: about the same region
    assert upsampled[0].tolist() == pytest.approx([1 / 8, 2 / 8, 4 / 8, 5 / 8], abs=2 / 32)


def _shapes_source(samples: int = 12, max_aspect_ratio: float = 1.0, with_refexps: bool = True) -> EvalSource:
    params = ShapesParams(samples=samples, seed=3, image_size=32, max_objects=3, max_aspect_ratio=max_aspect_ratio)
    rendered = [render_sample(params, index) for index in range(samples)]
    records = [
        EvalRecord(key=sample["__key__"], image=sample["png"], refexps=tuple(sample["json"]["refexps"]) if with_refexps else ())
        for sample in rendered
    ]
    return EvalSource(name="shapes", uri="memory://shapes", format="wds", classnames=(), read=lambda: iter(records))


def _micro(arch: str):
    cfg = load_model_cfg("shapes-vit-micro")
    if arch != "clip":
        cfg["vlp"] = {"arch": arch, "pooling": "cls"}
    return build_model_from_cfg(cfg)


@pytest.mark.usefixtures("one_thread")
def test_boxes_that_are_right_on_the_input_are_right_on_the_stored_image():
    """An oracle that answers each expression with its true box as the model input shows it scores 1: the suite maps
    predictions back to the stored (here non-square, centre-cropped) images exactly and keeps expressions in order."""
    built = _micro("clip")
    source = _shapes_source(max_aspect_ratio=1.6)
    truth = {}
    for record in source.read():
        height, width = image_size(record.image)
        mapping = eval_box_mapping(height, width, built.preprocess)
        truth.update({refexp["expression"] + record.key: mapping.to_input(torch.tensor([refexp["box"]], dtype=torch.double))[0] for refexp in record.refexps})
    keyed = [EvalRecord(key=r.key, image=r.image, refexps=tuple({**x, "expression": x["expression"] + r.key} for x in r.refexps)) for r in source.read()]
    grounded = ground_records(built, lambda pixels, rows, texts: torch.stack([truth[text] for text in texts]), keyed, batch_size=5)
    metrics = grounding_metrics(torch.cat(grounded.predicted), torch.cat(grounded.true), grounded.kinds)
    assert metrics[ACCURACY] == 1.0 and metrics["miou"] == pytest.approx(1.0)
    assert metrics["num_expressions"] == sum(len(record.refexps) for record in keyed)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("arch, method", [("transvg", "box regression"), ("clip", "patch-region baseline")])
def test_the_suite_reports_grounding_for_transvg_and_the_dual_encoder_baseline(arch, method, tmp_path):
    built = _micro(arch)
    output = run_grounding_suite(built, _shapes_source(), EvalSection(batch_size=16), "micro", plot_dir=tmp_path)
    (result,) = output.results
    assert result["task"] == TASK and result["num_images"] == 12
    metrics = result["metrics"]
    assert 0.0 <= metrics[ACCURACY] <= 1.0 and 0.0 <= metrics["miou"] <= 1.0
    assert metrics["num_expressions"] == result["num_captions"] > 12
    assert {key for key in metrics if key.startswith(f"{ACCURACY}/")} <= {f"{ACCURACY}/{kind}" for kind in ("attribute", "relation", "position")}
    assert "grounding/shapes/acc_at_0.5" in flat_metrics(output.results)
    assert [path.name for path in output.plots] == ["shapes-grounding-boxes.png"] and output.plots[0].stat().st_size > 0
    boxes = predict_boxes_for(built, [record.image for record in list(_shapes_source(2).read())], ["the shape", "the red one"])
    assert len(boxes) == 2 and all(0 <= value <= 32 for box in boxes for value in box)


def test_the_suite_skips_data_without_referring_expressions_and_models_without_patches():
    output = run_grounding_suite(_micro("transvg"), _shapes_source(3, with_refexps=False), EvalSection(), "micro")
    assert output.results == [] and "referring expressions" in output.skipped[TASK]
    resnet = build_model_from_cfg(load_model_cfg("shapes-rn-tiny"))
    output = run_grounding_suite(resnet, _shapes_source(3), EvalSection(), "rn")
    assert output.results == [] and "patch–text similarity" in output.skipped[TASK]
