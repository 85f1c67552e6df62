"""GroundingDecoder: the picked expression's box lands where the transformed pixels put its object."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from vlp.workloads.data.grounding_samples import MIN_VISIBLE, GroundingDecoder
from vlp.workloads.data.image_transforms import ImagePreprocess, ImageTransform
from vlp.workloads.data.loader import TrainStream, collate_with
from vlp.workloads.data.shapes import ShapesParams, generate_shapes, render_sample
from vlp.workloads.data.shards import iter_shard


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _decoder(size=(32, 32), resize_mode="shortest", exact=False) -> GroundingDecoder:
    preprocess = ImagePreprocess(size=size, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), resize_mode=resize_mode)
    return GroundingDecoder(ImageTransform(preprocess, augment=None, exact=exact))


def _sample(image: np.ndarray, *refexps: tuple[str, list[int]]) -> dict:
    meta = {"refexps": [{"expression": text, "box": box, "object": i} for i, (text, box) in enumerate(refexps)]}
    return {"__key__": "0", "png": _png(image), "json": json.dumps(meta).encode()}


def _bright_box(pixels: torch.Tensor) -> list[int]:
    ys, xs = np.nonzero(pixels.numpy().max(axis=0) > 127)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


@pytest.mark.parametrize("resize_mode", ["shortest", "longest", "squash"])
@pytest.mark.parametrize("size", [(32, 32), (24, 40)])
@pytest.mark.parametrize("canvas", [(40, 64), (64, 40), (50, 50)])
def test_box_follows_the_pixels(resize_mode, size, canvas):
    height, width = canvas
    image = np.zeros((height, width, 3), np.uint8)
    box = [width // 4, height // 3, width // 4 + width // 3, height // 3 + height // 3]
    image[box[1] : box[3], box[0] : box[2]] = 255
    for exact in (False, True):
        pixels, expression, targets = _decoder(size, resize_mode, exact)(_sample(image, ("the white square", box)), seed=3)
        assert pixels.dtype == torch.uint8 and tuple(pixels.shape) == (3, *size) and expression == "the white square"
        predicted = targets["box"]
        assert predicted.dtype == torch.float32 and predicted.shape == (4,) and 0 <= predicted.min() and predicted.max() <= 1
        in_pixels = (predicted * torch.tensor([size[1], size[0]] * 2)).tolist()
        # Resampling blurs the edges by less than a pixel: the bright region's edges sit within one pixel of the box.
        assert np.allclose(in_pixels, _bright_box(pixels), atol=1.0), (in_pixels, _bright_box(pixels))


def test_pixels_are_the_evaluation_transform_and_normalise_is_the_models():
    params = ShapesParams(samples=6, seed=2, image_size=40, max_aspect_ratio=1.6, max_objects=3)
    preprocess = ImagePreprocess(size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    evaluation = ImageTransform(preprocess, augment=None, exact=False)
    decoder = GroundingDecoder(evaluation)
    for index in range(6):
        sample = render_sample(params, index)
        raw = {**sample, "json": json.dumps(sample["json"]).encode()}
        pixels, expression, targets = decoder(raw, seed=index)
        assert torch.equal(pixels, evaluation.to_uint8(sample["png"]))
        assert expression in [r["expression"] for r in sample["json"]["refexps"]]
    batch = torch.stack([pixels, pixels])
    assert torch.equal(decoder.normalise(batch), evaluation.normalise(batch))


def test_the_seed_picks_the_expression_reproducibly():
    image = np.zeros((32, 32, 3), np.uint8)
    sample = _sample(image, ("the left one", [1, 1, 10, 10]), ("the right one", [20, 1, 30, 10]), ("the bottom one", [5, 20, 15, 30]))
    decoder = _decoder()
    picked = {seed: decoder(sample, seed)[1] for seed in range(30)}
    assert set(picked.values()) == {"the left one", "the right one", "the bottom one"}
    assert all(decoder(sample, seed)[1] == expression for seed, expression in picked.items())
    boxes = {decoder(sample, seed)[1]: decoder(sample, seed)[2]["box"].tolist() for seed in range(3)}
    assert boxes["the left one"] == pytest.approx([1 / 32, 1 / 32, 10 / 32, 10 / 32])


def test_boxes_cut_by_the_crop_are_clipped_or_refused():
    # 32 x 64 (h x w) -> shortest 32: the crop keeps columns 16..47.
    image = np.zeros((32, 64, 3), np.uint8)
    outside, half, inside = ("outside", [0, 0, 12, 10]), ("mostly in", [10, 0, 30, 10]), ("inside", [20, 0, 40, 10])
    decoder = _decoder()
    seen = {decoder(_sample(image, outside, half, inside), seed)[1] for seed in range(20)}
    assert seen == {"mostly in", "inside"}  # "outside" lies wholly beyond the crop
    clipped = decoder(_sample(image, half), 0)[2]["box"]
    assert clipped.tolist() == pytest.approx([0.0, 0.0, 14 / 32, 10 / 32])  # 70% visible (>= MIN_VISIBLE): clipped
    assert MIN_VISIBLE == 0.5
    with pytest.raises(ValueError, match="none of the 1 referring expressions keeps 50%"):
        decoder(_sample(image, ("barely", [2, 0, 20, 10])), 0)  # 4 of 18 columns visible
    # longest keeps the whole image, so the same box is trained on there.
    assert _decoder(resize_mode="longest")(_sample(image, ("barely", [2, 0, 20, 10])), 0)[1] == "barely"


@pytest.mark.parametrize(
    "sample, message",
    [
        ({"png": _png(np.zeros((8, 8, 3), np.uint8)), "json": b'{"refexps": []}'}, "no referring expressions"),
        ({"png": _png(np.zeros((8, 8, 3), np.uint8)), "json": b'{"shape": "circle"}'}, "no referring expressions"),
        ({"png": _png(np.zeros((8, 8, 3), np.uint8))}, "no json field"),
        ({"json": b'{"refexps": [{"expression": "x", "box": [0, 0, 1, 1]}]}'}, "no image field"),
        ({"png": _png(np.zeros((8, 8, 3), np.uint8)), "json": b'{"refexps": [{"expression": "x", "box": [0, 0, 1]}]}'}, "lacks"),
        ({"png": _png(np.zeros((8, 8, 3), np.uint8)), "json": b'{"refexps": [{"expression": "x", "box": [4, 0, 4, 1]}]}'}, "is empty"),
    ],
)
def test_samples_without_usable_expressions_are_bad_data(sample, message):
    with pytest.raises(ValueError, match=message):
        _decoder()({"__key__": "0", **sample}, 0)


def test_the_training_stream_batches_boxes(tmp_path):
    params = ShapesParams(samples=24, seed=4, max_objects=3, shard_size=12)
    generate_shapes(params, str(tmp_path), processes=1)
    decoder = _decoder()
    shards = [str(tmp_path / f"shard-{i:06d}.tar") for i in range(2)]
    stream = TrainStream(shards, decoder, rank=0, world_size=1, seed=0, shuffle_buffer=8)
    items = [item for item, _ in zip(stream, range(8))]
    images, texts, targets, _ = collate_with(lambda captions: captions, decoder)(items)
    assert images.dtype == torch.float32 and images.shape == (8, 3, 32, 32)
    assert set(targets) == {"box"} and targets["box"].shape == (8, 4)
    # Shapes keep their objects inside the square, so the box is the object's box scaled to the input.
    by_expression = {}
    for shard in shards:
        for sample in iter_shard(shard):
            for refexp in json.loads(sample["json"])["refexps"]:
                by_expression.setdefault(refexp["expression"], []).append([v / 32 for v in refexp["box"]])
    for text, box in zip(texts, targets["box"].tolist()):
        assert any(box == pytest.approx(candidate) for candidate in by_expression[text])
