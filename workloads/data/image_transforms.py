"""Image preprocessing equal to open_clip's `image_transform(...)`, on uint8 tensors.

open_clip decodes with PIL and transforms PIL images. vlp decodes with torchvision.io (libjpeg-turbo, libpng;
pixel-identical to PIL's `convert("RGB")`) straight into a 3×H×W uint8 tensor and normalises once at the end in
float. Evaluation resamples with PIL, so its output equals open_clip's; training resamples with torch's
antialiased uint8 kernels (the same filters, ~8× faster than PIL) and draws its crops with torchvision's
`RandomResizedCrop.get_params`, as open_clip does. tests/unit/workloads/test_image_transforms.py holds both
against open_clip's own transforms.

Reduced-size JPEG decoding (PIL `draft()`, DCT scaling) is deliberately not used: measured on photo-like JPEGs
1.5–8× larger than the target it changed pixels by up to 26 levels (0.7 on average) for at most 1.5× faster
decoding, and img2dataset's 256–512 px images are too small for it to apply at 224 px anyway.
"""

from __future__ import annotations

import io
import random
from dataclasses import asdict, dataclass
from typing import Any

import torch

from vlp.platform.errors import SpecError
from vlp.platform.spec.data import AugmentSection

RESIZE_MODES = ("shortest", "longest", "squash")
# open_clip accepts "random" too and evaluates it as bicubic.
INTERPOLATIONS = ("bicubic", "bilinear", "random")
# Mask pixels that open_clip's `longest` mode pads are marked with this value, which no object index reaches.
MASK_PADDING = 255


@dataclass(frozen=True)
class ImagePreprocess:
    """A model's image preprocessing: open_clip's `PreprocessCfg` with the size as (height, width)."""

    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    fill_color: int = 0

    @classmethod
    def from_model_cfg(cls, model_cfg: dict[str, Any]) -> "ImagePreprocess":
        """What open_clip's `create_model` derives: its defaults, overlaid with the config's `preprocess_cfg`
        (as in an `open_clip_config.json`), the size always the vision tower's."""
        from open_clip.transform import PreprocessCfg, merge_preprocess_dict

        overlay = model_cfg.get("preprocess_cfg") or {}
        if not isinstance(overlay, dict):
            raise SpecError("model_cfg.preprocess_cfg: expected a mapping of open_clip PreprocessCfg fields")
        merged = merge_preprocess_dict(PreprocessCfg(), {**overlay, "size": model_cfg["vision_cfg"]["image_size"]})
        size = merged["size"]
        # As open_clip's image_transform: one number stands for all three channels.
        mean, std = (tuple(value) if isinstance(value, (list, tuple)) else (value,) * 3 for value in (merged["mean"], merged["std"]))
        if merged["interpolation"] not in INTERPOLATIONS:
            raise SpecError(f"model_cfg.preprocess_cfg.interpolation: {merged['interpolation']!r} is not one of {', '.join(INTERPOLATIONS)}")
        if merged["resize_mode"] not in RESIZE_MODES:
            raise SpecError(f"model_cfg.preprocess_cfg.resize_mode: {merged['resize_mode']!r} is not one of {', '.join(RESIZE_MODES)}")
        if len(mean) != 3 or len(std) != 3:
            raise SpecError("model_cfg.preprocess_cfg: mean and std need one value or three (RGB)")
        return cls(
            size=(size, size) if isinstance(size, int) else (int(size[0]), int(size[1])),
            mean=tuple(float(value) for value in mean),
            std=tuple(float(value) for value in std),
            interpolation=merged["interpolation"],
            resize_mode=merged["resize_mode"],
            fill_color=int(merged["fill_color"]),
        )

    def open_clip_cfg(self) -> dict[str, Any]:
        """As open_clip writes `preprocess_cfg` (e.g. in `open_clip_config.json`)."""
        cfg = asdict(self)
        cfg["size"] = self.size[0] if self.size[0] == self.size[1] else list(self.size)
        return {"mode": "RGB", **cfg, "mean": list(self.mean), "std": list(self.std)}


def decode_rgb(image_bytes: bytes) -> torch.Tensor:
    """Encoded image → 3×H×W uint8 RGB (alpha dropped, grey and palette expanded, as PIL's `convert("RGB")`).
    Raises ValueError for bytes that are not an image (the training loader skips and counts those)."""
    from torchvision.io import ImageReadMode, decode_image

    try:
        pixels = decode_image(torch.frombuffer(bytearray(image_bytes), dtype=torch.uint8), ImageReadMode.RGB)
    except (RuntimeError, ValueError):
        # Formats libjpeg/libpng/libwebp do not read (BMP, TIFF, …) go through PIL; what PIL cannot read is bad data.
        import numpy as np
        from PIL import Image, UnidentifiedImageError

        try:
            image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
        except UnidentifiedImageError:
            raise ValueError(f"not a decodable image ({len(image_bytes)} bytes in no format PIL or torchvision reads)") from None
        except (OSError, ValueError) as err:
            raise ValueError(f"not a decodable image ({len(image_bytes)} bytes): {err}") from None
        return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
    if pixels.dtype != torch.uint8:  # 16-bit PNG
        from torchvision.transforms.v2.functional import to_dtype

        pixels = to_dtype(pixels, torch.uint8, scale=True)
    return pixels


class ImageTransform:
    """Encoded image → the model's normalised 3×H×W float input: open_clip's eval transform when `augment` is
    None, its (non-timm) training transform otherwise.

    Training draws are reproducible: given `seed`, the crop, jitter and grey-scale draws come from torch's CPU
    generator seeded with it (then restored), so a sample looks the same whenever its position is replayed.
    `exact=False` resamples the unaugmented geometry with torch's kernels too (training without augmentation).
    """

    def __init__(self, preprocess: ImagePreprocess, augment: AugmentSection | None = None, exact: bool = True):
        self.preprocess = preprocess
        self.augment = augment if augment is not None and augment.enabled else None
        self.exact = exact
        # (x / 255 - mean) / std as one multiply and one subtract.
        std = torch.tensor(preprocess.std)
        self.scale = (1.0 / (255.0 * std)).view(3, 1, 1)
        self.shift = (torch.tensor(preprocess.mean) / std).view(3, 1, 1)
        self.color_jitter = None
        if self.augment is not None and self.augment.color_jitter is not None:
            from torchvision.transforms import ColorJitter

            self.color_jitter = ColorJitter(*self.augment.color_jitter)

    def __call__(self, image_bytes: bytes, seed: int | None = None) -> torch.Tensor:
        return self.normalise(self.to_uint8(image_bytes, seed))

    def to_uint8(self, image_bytes: bytes, seed: int | None = None) -> torch.Tensor:
        return self.transform_uint8(decode_rgb(image_bytes), seed)

    def transform_uint8(self, pixels: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        """Decoded uint8 3×H×W, or T×3×H×W video frames, → the transformed uint8 pixels; frames of a video share one
        crop, one jitter and one grey-scale coin, so the augmentation stays consistent across time."""
        if self.augment is None:
            return resize_and_crop(pixels, self.preprocess, _interpolation(self.preprocess.interpolation), self.preprocess.fill_color, self.exact)
        if seed is None:
            return self._augmented(pixels, random)
        generator = torch.default_generator
        state = generator.get_state()
        generator.manual_seed(seed)
        try:
            return self._augmented(pixels, random.Random(seed))
        finally:
            generator.set_state(state)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (…×3×H×W) → normalised float."""
        return pixels.float().mul_(self.scale).sub_(self.shift)

    def crop_box(self, pixels: torch.Tensor) -> tuple[int, int, int, int]:
        """(top, left, height, width) of a training crop, drawn from torch's generator as open_clip draws it."""
        from torchvision.transforms import RandomResizedCrop

        return RandomResizedCrop.get_params(pixels, list(self.augment.scale), list(self.augment.ratio))

    def _augmented(self, pixels: torch.Tensor, coin: random.Random) -> torch.Tensor:
        """open_clip's draws in open_clip's order: the crop and the jitter factors from torch, the "apply at all?"
        coins from Python's `random` (open_clip's color_jitter and gray_scale wrappers toss those)."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2.functional import resized_crop, rgb_to_grayscale

        augment = self.augment
        top, left, height, width = self.crop_box(pixels)
        # open_clip's training crop always resamples bicubic, whatever the model's interpolation.
        pixels = resized_crop(pixels, top, left, height, width, list(self.preprocess.size), InterpolationMode.BICUBIC, antialias=True)
        if self.color_jitter is not None and augment.color_jitter_prob and coin.random() < augment.color_jitter_prob:
            pixels = self.color_jitter(pixels)
        if augment.grayscale_prob and coin.random() < augment.grayscale_prob:
            pixels = rgb_to_grayscale(pixels, num_output_channels=3)
        return pixels

    def open_clip_transform(self):
        """open_clip's own transform for the same settings (PIL in, float tensor out): the reference in tests and
        benchmarks."""
        from open_clip.transform import image_transform

        preprocess = self.preprocess
        size = preprocess.size[0] if preprocess.size[0] == preprocess.size[1] else preprocess.size
        return image_transform(
            size, is_train=self.augment is not None, mean=preprocess.mean, std=preprocess.std,
            resize_mode=preprocess.resize_mode, interpolation=preprocess.interpolation, fill_color=preprocess.fill_color,
            aug_cfg=self.augment.open_clip_aug_cfg() if self.augment is not None else None,
        )


def resize_and_crop(pixels: torch.Tensor, preprocess: ImagePreprocess, interpolation, fill: int, exact: bool = False) -> torch.Tensor:
    """open_clip's eval geometry for `preprocess.resize_mode`, with the output sizes computed exactly as its
    torchvision `Resize`/`CenterCrop` and timm-style `ResizeKeepRatio`/`CenterCropOrPad` compute them.

    `exact` resamples with PIL, as open_clip does; otherwise with torch's uint8 kernels, about 8× faster. Both
    apply the same filter in two one-axis passes, but Pillow sometimes runs the vertical pass first; where an
    edge's overshoot is clipped between the passes that moves a few pixels by up to ~10 levels (bicubic; measured
    in tests/unit/workloads/test_image_transforms.py). Evaluation is exact, training fast.
    """
    from open_clip.transform import center_crop_or_pad
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2.functional import center_crop

    target_h, target_w = preprocess.size
    height, width = pixels.shape[-2:]
    if preprocess.resize_mode == "squash":
        return _resize(pixels, (target_h, target_w), interpolation, exact)
    if preprocess.resize_mode == "longest":
        ratio = max(height / target_h, width / target_w)
        pixels = _resize(pixels, (round(height / ratio), round(width / ratio)), interpolation, exact)
        return center_crop_or_pad(pixels, [target_h, target_w], fill=fill)
    if target_h == target_w:
        # torchvision's Resize(int): the short side becomes the size, the long side is truncated, not rounded.
        short, long = sorted((height, width))
        new_long = int(target_h * long / short)
        pixels = _resize(pixels, (target_h, new_long) if height <= width else (new_long, target_h), interpolation, exact)
    else:
        # open_clip's ResizeKeepRatio for a non-square target is built with its default (bicubic) interpolation.
        if interpolation not in (InterpolationMode.NEAREST, InterpolationMode.NEAREST_EXACT):
            interpolation = InterpolationMode.BICUBIC
        ratio = min(height / target_h, width / target_w)
        pixels = _resize(pixels, (round(height / ratio), round(width / ratio)), interpolation, exact)
    return center_crop(pixels, [target_h, target_w])


def _resize(pixels: torch.Tensor, size: tuple[int, int], interpolation, exact: bool) -> torch.Tensor:
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2.functional import resize

    if tuple(pixels.shape[-2:]) == size:
        return pixels
    if not exact:
        antialias = interpolation not in (InterpolationMode.NEAREST, InterpolationMode.NEAREST_EXACT)
        return resize(pixels, list(size), interpolation, antialias=antialias)
    import numpy as np
    from PIL import Image

    if pixels.ndim == 4:  # video frames: PIL resamples one image at a time
        return torch.stack([_resize(frame, size, interpolation, exact) for frame in pixels])
    resample = {InterpolationMode.BICUBIC: Image.BICUBIC, InterpolationMode.BILINEAR: Image.BILINEAR}[interpolation]
    image = Image.fromarray(pixels.permute(1, 2, 0).numpy())
    return torch.from_numpy(np.asarray(image.resize((size[1], size[0]), resample)).copy()).permute(2, 0, 1)


def _interpolation(name: str):
    from torchvision.transforms import InterpolationMode

    return InterpolationMode.BILINEAR if name == "bilinear" else InterpolationMode.BICUBIC
