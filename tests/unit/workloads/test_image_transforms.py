"""vlp's uint8-tensor image transforms against open_clip's own `image_transform(...)` on photo-like images."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from pydantic import ValidationError
from scipy.stats import ks_2samp

from vlp.platform.errors import SpecError
from vlp.platform.spec.data import AugmentSection, DataSection
from vlp.workloads.data.image_transforms import MASK_PADDING, ImagePreprocess, ImageTransform, decode_rgb
from vlp.workloads.data.loader import StreamPosition, sample_seed
from vlp.workloads.evaluation.transform import EvalImageTransform

SIZES = [(97, 300), (500, 333), (224, 224), (640, 480), (33, 512), (300, 97)]
# Mean 0 and std 1 make the output the [0, 1] pixels, so differences read in 8-bit levels.
UNIT = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth colour noise, gradients, pixel noise and a few hard-edged shapes: not flat anywhere."""
    rng = np.random.default_rng(seed)
    coarse = (rng.random((max(2, height // 16), max(2, width // 16), 3)) * 255).astype(np.uint8)
    pixels = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC)).astype(np.float32)
    rows, cols = np.mgrid[0:height, 0:width]
    pixels[..., 0] += 60 * cols / width
    pixels[..., 2] += 60 * rows / height
    pixels += rng.normal(0, 8, pixels.shape)
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        draw.ellipse([x, y, x + width // 4, y + height // 4], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return image


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def preprocess(size=224, **overrides) -> ImagePreprocess:
    cfg = {"vision_cfg": {"image_size": size}, "preprocess_cfg": {**UNIT, **overrides}}
    return ImagePreprocess.from_model_cfg(cfg)


def levels(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """Largest difference in 8-bit levels between our uint8 output and open_clip's [0, 1] floats."""
    assert ours.shape == theirs.shape
    return (ours.float() - theirs * 255).abs().max().item()


def assert_within_one_level_but_for_edge_pixels(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    """torch's uint8 resampling (the fast path) uses PIL's filters, but Pillow sometimes runs the vertical pass first;
    where a hard edge's overshoot is clipped between the passes, a few pixels (well under 0.5%) move further."""
    difference = (ours.float() - theirs * 255).abs()
    assert (difference > 1).float().mean() < 5e-3 and difference.max() <= 16, (difference.max(), (difference > 1).float().mean())


def open_clip_input(data: bytes) -> Image.Image:
    # open_clip_train's webdataset loader decodes with "pilrgb": PIL, then convert("RGB").
    return Image.open(io.BytesIO(data)).convert("RGB")


@pytest.mark.parametrize("resize_mode", ["shortest", "longest", "squash"])
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_eval_transform_equals_open_clip_within_one_level(resize_mode, interpolation):
    transform = EvalImageTransform(preprocess(resize_mode=resize_mode, interpolation=interpolation, fill_color=37))
    reference = transform.open_clip_transform()
    for index, (width, height) in enumerate(SIZES):
        data = encoded(photo(width, height, seed=index))
        assert levels(transform.to_uint8(data), reference(open_clip_input(data))) <= 1, (width, height)


@pytest.mark.parametrize("resize_mode", ["shortest", "longest", "squash"])
def test_fast_unaugmented_training_geometry_is_open_clips_but_for_a_few_edge_pixels(resize_mode):
    """Training with augmentation off resamples with torch's kernels: same sizes and crops, PIL's filter."""
    transform = ImageTransform(preprocess(resize_mode=resize_mode), augment=None, exact=False)
    reference = transform.open_clip_transform()
    for index, (width, height) in enumerate(SIZES):
        data = encoded(photo(width, height, seed=index))
        assert_within_one_level_but_for_edge_pixels(transform.to_uint8(data), reference(open_clip_input(data))), (width, height)


@pytest.mark.parametrize("resize_mode", ["shortest", "longest", "squash"])
def test_non_square_target_equals_open_clip(resize_mode):
    transform = EvalImageTransform(preprocess(size=(160, 256), resize_mode=resize_mode))
    reference = transform.open_clip_transform()
    for width, height in [(500, 333), (97, 300), (640, 480)]:
        data = encoded(photo(width, height))
        assert transform.to_uint8(data).shape == (3, 160, 256)
        assert levels(transform.to_uint8(data), reference(open_clip_input(data))) <= 1, (width, height)


def rgba(image: Image.Image) -> Image.Image:
    alpha = Image.fromarray(np.random.default_rng(1).integers(0, 256, image.size[::-1], dtype=np.uint8))
    with_alpha = image.convert("RGBA")
    with_alpha.putalpha(alpha)
    return with_alpha


@pytest.mark.parametrize("kind", ["jpeg", "jpeg-420", "grey-jpeg", "grey-png", "grey-alpha-png", "rgba-png", "palette-png", "webp"])
def test_every_input_kind_decodes_like_pil_convert_rgb(kind):
    image = photo(500, 333, seed=3)
    data = {
        "jpeg": lambda: encoded(image, "JPEG", quality=90, subsampling=0),
        "jpeg-420": lambda: encoded(image, "JPEG", quality=75, subsampling=2),
        "grey-jpeg": lambda: encoded(image.convert("L"), "JPEG"),
        "grey-png": lambda: encoded(image.convert("L")),
        "grey-alpha-png": lambda: encoded(image.convert("LA")),
        "rgba-png": lambda: encoded(rgba(image)),
        "palette-png": lambda: encoded(image.convert("P", palette=Image.ADAPTIVE)),
        "webp": lambda: encoded(image, "WEBP", quality=90),
    }[kind]()
    expected = torch.from_numpy(np.array(open_clip_input(data))).permute(2, 0, 1)
    assert torch.equal(decode_rgb(data), expected)
    transform = EvalImageTransform(preprocess())
    assert levels(transform.to_uint8(data), transform.open_clip_transform()(open_clip_input(data))) <= 1


def test_formats_torchvision_does_not_read_go_through_pil_and_garbage_raises():
    image = photo(64, 48)
    assert torch.equal(decode_rgb(encoded(image, "BMP")), torch.from_numpy(np.array(image)).permute(2, 0, 1))
    with pytest.raises(ValueError, match="not a decodable image"):
        decode_rgb(b"\x89PNG\r\n\x1a\n but not really")
    with pytest.raises(ValueError, match="not a decodable image"):
        decode_rgb(encoded(image, "JPEG")[:200])


def test_normalise_matches_open_clip_mean_and_std():
    transform = EvalImageTransform(preprocess(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), resize_mode="squash"))
    data = encoded(photo(500, 333))
    difference = (transform(data) - transform.open_clip_transform()(open_clip_input(data))).abs().max().item()
    assert difference <= 1 / 255 / 0.5 + 1e-6


@pytest.mark.parametrize("width,height", SIZES)
def test_training_crop_equals_open_clip_for_the_same_seed(width, height):
    """Same seed, same crop box; resampled by torch's uint8 kernels (PIL's filter, not always PIL's pass order),
    so all but a few edge pixels are within one level."""
    transform = ImageTransform(preprocess(), AugmentSection())
    reference = transform.open_clip_transform()
    data = encoded(photo(width, height, seed=width))
    for seed in range(3):
        torch.manual_seed(seed)
        assert_within_one_level_but_for_edge_pixels(transform.to_uint8(data, seed=seed), reference(open_clip_input(data)))


def test_seeded_draws_replay_and_differ_between_seeds():
    transform = ImageTransform(preprocess(size=64), AugmentSection(color_jitter=(0.4, 0.4, 0.4, 0.1), grayscale_prob=0.5))
    data = encoded(photo(300, 200))
    first = transform.to_uint8(data, seed=11)
    assert torch.equal(first, transform.to_uint8(data, seed=11))
    assert not torch.equal(first, transform.to_uint8(data, seed=12))


def test_seeded_draws_leave_the_global_generator_alone():
    transform = ImageTransform(preprocess(size=64), AugmentSection())
    data = encoded(photo(300, 200))
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    transform.to_uint8(data, seed=99)
    assert torch.equal(torch.rand(4), expected)


# open_clip applies these options yet warns that they are unused (it only pops `scale` from its dict).
@pytest.mark.filterwarnings("ignore:Unused augmentation cfg items")
@pytest.mark.parametrize("jitter,grey", [((0.4, 0.4, 0.4, 0.0), 0.0), (None, 1.0)])
def test_colour_jitter_and_grey_scale_follow_open_clip(jitter, grey):
    augment = AugmentSection(color_jitter=jitter, color_jitter_prob=1.0, grayscale_prob=grey)
    transform = ImageTransform(preprocess(), augment)
    reference = transform.open_clip_transform()
    data = encoded(photo(500, 333))
    for seed in range(3):
        torch.manual_seed(seed)
        random.seed(seed)
        theirs = reference(open_clip_input(data))
        ours = transform.to_uint8(data, seed=seed)
        # PIL's enhancers and torchvision's tensor ops round differently: a few levels, not a different picture.
        assert levels(ours, theirs) <= 3, seed
        if grey:
            assert torch.equal(ours[0], ours[1]) and torch.equal(ours[1], ours[2])


def crop_statistics(boxes, image_height, image_width):
    boxes = np.array(boxes, dtype=np.float64)
    area = boxes[:, 2] * boxes[:, 3] / (image_height * image_width)
    aspect = np.log(boxes[:, 3] / boxes[:, 2])
    return area, aspect


def test_crops_of_the_stream_seeds_are_distributed_as_open_clips():
    """Crop boxes drawn with the loader's per-sample seeds against open_clip's RandomResizedCrop on one global
    generator: the same area and aspect distributions; a crop scale of (0.8, 1.0) instead is told apart."""
    height, width = 333, 500
    pixels = torch.zeros(3, height, width, dtype=torch.uint8)
    reference_crop = ImageTransform(preprocess(), AugmentSection()).open_clip_transform().transforms[0]
    torch.manual_seed(0)
    theirs = crop_statistics([reference_crop.get_params(pixels, reference_crop.scale, reference_crop.ratio) for _ in range(1500)], height, width)

    def ours(augment: AugmentSection):
        transform = ImageTransform(preprocess(), augment)
        boxes = []
        generator = torch.default_generator
        for drawn in range(1500):
            generator.manual_seed(sample_seed(5, StreamPosition(consumer=drawn % 4, epoch=1, drawn=drawn, skipped=0)))
            boxes.append(transform.crop_box(pixels))
        return crop_statistics(boxes, height, width)

    same, wrong = ours(AugmentSection()), ours(AugmentSection(scale=(0.8, 1.0)))
    assert ks_2samp(same[0], theirs[0]).pvalue > 1e-3 and ks_2samp(same[1], theirs[1]).pvalue > 1e-3
    assert ks_2samp(wrong[0], theirs[0]).pvalue < 1e-6
    assert same[0].min() >= 0.88 and same[0].max() <= 1.0


@pytest.mark.parametrize("resize_mode", ["shortest", "longest", "squash"])
def test_mask_is_cut_like_its_image(resize_mode):
    """An image painted by its label mask, transformed beside the mask: away from region borders every pixel has
    its label's colour, and where `longest` pads the image, the mask says MASK_PADDING."""
    width, height = 500, 300
    labels = np.zeros((height, width), dtype=np.uint8)
    labels[40:200, 60:260] = 1
    labels[150:290, 300:480] = 2
    colours = np.array([[20, 20, 20], [230, 40, 40], [40, 40, 230]], dtype=np.uint8)
    transform = EvalImageTransform(preprocess(size=96, resize_mode=resize_mode, interpolation="bilinear", fill_color=128))
    image = transform.to_uint8(encoded(Image.fromarray(colours[labels])))
    mask = transform.mask(encoded(Image.fromarray(labels)))
    assert mask.shape == image.shape[1:] and mask.dtype == torch.int64
    padded = mask == MASK_PADDING
    assert padded.any() == (resize_mode == "longest")
    assert torch.all(image[:, padded] == 128)
    inside = torch.ones_like(mask, dtype=torch.bool)
    for dy in (-2, -1, 0, 1, 2):
        for dx in (-2, -1, 0, 1, 2):
            inside &= torch.roll(mask, (dy, dx), (0, 1)) == mask
    inside &= ~padded
    assert inside.sum() > 0.5 * (~padded).sum()
    expected = torch.from_numpy(colours)[mask[inside].clamp(max=2)].T
    assert (image[:, inside].int() - expected.int()).abs().max() <= 2


def test_palette_mask_values_are_its_indices():
    labels = np.zeros((40, 60), dtype=np.uint8)
    labels[10:30, 20:50] = 3
    mask_image = Image.fromarray(labels, mode="L").convert("P")
    mask_image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 10, 200, 30] + [0] * 756)
    mask = EvalImageTransform(preprocess(size=40, resize_mode="squash")).mask(encoded(mask_image))
    assert set(mask.unique().tolist()) == {0, 3}


def test_preprocess_from_model_cfg_is_open_clips_merge():
    plain = ImagePreprocess.from_model_cfg({"vision_cfg": {"image_size": 224}})
    assert plain.mean == (0.48145466, 0.4578275, 0.40821073) and plain.resize_mode == "shortest" and plain.size == (224, 224)
    siglip = ImagePreprocess.from_model_cfg({
        "vision_cfg": {"image_size": 256},
        "preprocess_cfg": {"mean": 0.5, "std": [0.5, 0.5, 0.5], "resize_mode": "squash", "interpolation": "bilinear", "size": 999},
    })
    # open_clip sizes the preprocessing like the image tower, whatever preprocess_cfg says.
    assert siglip.size == (256, 256) and siglip.mean == (0.5, 0.5, 0.5) and siglip.std == (0.5, 0.5, 0.5)
    assert siglip.open_clip_cfg() == {"mode": "RGB", "size": 256, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear",
                                      "resize_mode": "squash", "fill_color": 0}
    with pytest.raises(SpecError, match="preprocess_cfg.resize_mode"):
        ImagePreprocess.from_model_cfg({"vision_cfg": {"image_size": 32}, "preprocess_cfg": {"resize_mode": "crop"}})


def test_augment_section_null_turns_augmentation_off_and_ranges_are_checked():
    assert DataSection().augment.enabled
    assert DataSection.model_validate({"augment": None}).augment.enabled is False
    assert ImageTransform(preprocess(), DataSection.model_validate({"augment": None}).augment).augment is None
    with pytest.raises(ValidationError, match="data.augment.scale"):
        AugmentSection(scale=(0.9, 1.5))
    assert AugmentSection().open_clip_aug_cfg() == {"scale": (0.9, 1.0)}
