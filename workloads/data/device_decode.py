"""JPEG decoding on the training device: loader workers pass the encoded bytes and each image's crop, and the
device decodes the whole batch at once (nvJPEG through `torchvision.io.decode_jpeg(device="cuda")`), crops,
resizes and normalises it there.

Workers then only parse JPEG headers (for the image size the crop is drawn from), so a few CPU cores feed a GPU
that would otherwise wait on decoding. The crops are drawn exactly as `ImageTransform` draws them (same seed, same
torch generator calls), so a sample gets the same crop on either path; on CPU tensors both paths give identical
pixels (tests/unit/workloads/test_device_decode.py). Samples that are not JPEG (PNG, WebP) are decoded and
transformed in the worker as usual and travel beside the encoded ones.
"""

from __future__ import annotations

import io
from typing import Any, NamedTuple

import torch

from vlp.workloads.data.image_transforms import ImageTransform

JPEG_KEYS = ("jpg", "jpeg")


class EncodedBatch(NamedTuple):
    """A batch as the loader hands it over on the device path: per sample either the encoded JPEG (1-D uint8) or
    the already transformed uint8 image (3-D), and the crop (top, left, height, width) of each encoded one."""

    items: list[torch.Tensor]
    crops: torch.Tensor


class DeviceDecodeImageTextDecoder:
    """The sample decoder of the device path: `(sample, seed) -> (encoded JPEG or transformed pixels, caption, {})`."""

    def __init__(self, transform: ImageTransform):
        if transform.color_jitter is not None or (transform.augment is not None and transform.augment.grayscale_prob):
            raise ValueError("decoding on the device supports the crop augmentation only (no colour jitter or grey-scale)")
        self.transform = transform
        self.fallback = None

    def __call__(self, sample: dict[str, Any], seed: int | None = None) -> tuple[torch.Tensor, str, dict]:
        caption = sample.get("txt", b"")
        caption = caption.decode("utf-8") if isinstance(caption, bytes) else caption
        jpeg = next((sample[key] for key in JPEG_KEYS if key in sample), None)
        if jpeg is None:
            from vlp.workloads.data.loader import ImageTextDecoder

            pixels, caption, targets = ImageTextDecoder(self.transform)(sample, seed)
            return pixels, caption, {"crop": torch.zeros(4, dtype=torch.long), **targets}
        crop = self.crop(jpeg_size(jpeg), seed)
        return torch.frombuffer(bytearray(jpeg), dtype=torch.uint8), caption, {"crop": torch.tensor(crop, dtype=torch.long)}

    def crop(self, size: tuple[int, int], seed: int | None) -> tuple[int, int, int, int]:
        """The crop ImageTransform would draw for an image of this (height, width) with this seed; the whole image
        when training does not augment (the eval geometry is applied on the device)."""
        height, width = size
        if self.transform.augment is None:
            return (0, 0, height, width)
        shape_only = torch.empty((), dtype=torch.uint8).expand(3, height, width)  # no memory: only its shape is read
        if seed is None:
            return tuple(self.transform.crop_box(shape_only))
        generator = torch.default_generator
        state = generator.get_state()
        generator.manual_seed(seed)
        try:
            return tuple(self.transform.crop_box(shape_only))
        finally:
            generator.set_state(state)

    def batch(self, pixels: list[torch.Tensor], targets: list[dict]) -> EncodedBatch:
        """What the collate function makes of a batch's pixels (the crops leave the targets)."""
        return EncodedBatch(list(pixels), torch.stack([sample.pop("crop") for sample in targets]))

    def to_device(self, batch: EncodedBatch, device: torch.device) -> torch.Tensor:
        """Decode the encoded images in one call on `device`, crop and resize each, stack and normalise."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2.functional import resized_crop

        from vlp.workloads.train.device_path import decode_jpeg_batch

        encoded = [row for row, item in enumerate(batch.items) if item.dim() == 1]
        decoded = dict(zip(encoded, decode_jpeg_batch([batch.items[row] for row in encoded], device)))
        preprocess = self.transform.preprocess
        images = []
        for row, item in enumerate(batch.items):
            if row not in decoded:
                images.append(item.to(device, non_blocking=True))
                continue
            top, left, height, width = batch.crops[row].tolist()
            if self.transform.augment is None:
                images.append(self.transform.transform_uint8(decoded[row]))
            else:
                # As ImageTransform's training crop: always bicubic, whatever the model's interpolation.
                images.append(resized_crop(decoded[row], top, left, height, width, list(preprocess.size), InterpolationMode.BICUBIC, antialias=True))
        stacked = torch.stack(images)
        scale, shift = self.transform.scale.to(device), self.transform.shift.to(device)
        return stacked.float().mul_(scale).sub_(shift)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.transform.normalise(pixels)


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """(height, width) from the JPEG header alone; bytes that are not a readable JPEG are bad data (ValueError)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(jpeg)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"not a decodable JPEG ({len(jpeg)} bytes): {err}") from None
    return height, width
