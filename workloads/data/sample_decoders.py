"""Which sample decoder feeds training: the architecture says what a sample must become.

A sample decoder turns one raw shard sample into `(uint8 pixels, text, targets)` — an image `[3, H, W]` or a clip
`[T, 3, H, W]`, the text the model reads (caption, referring expression), and the supervision the objective needs
(empty for image-text pairs) — and `normalise`s a stacked batch into the model's float input.
"""

from __future__ import annotations

import importlib

from vlp.platform.spec import ExperimentSpec
from vlp.workloads.data.image_transforms import ImageTransform
from vlp.workloads.data.loader import ImageTextDecoder
from vlp.workloads.models.factory import BuiltModel

# Architectures whose samples are not plain image-text pairs: module and class of their decoder, built as
# `Decoder(transform, spec)`.
ARCH_DECODERS = {
    "transvg": ("vlp.workloads.data.grounding_samples", "GroundingDecoder"),
    "video": ("vlp.workloads.data.video_samples", "VideoTextDecoder"),
}


def sample_decoder(spec: ExperimentSpec, built: BuiltModel, decode_on_device: bool = False):
    """The training decoder for this experiment's architecture, with the model's training transform;
    `decode_on_device` leaves JPEG decoding of image-text pairs to the training device (see device_decode.py)."""
    transform = ImageTransform(built.preprocess, spec.data.augment, exact=False)
    if built.arch not in ARCH_DECODERS:
        if decode_on_device:
            from vlp.workloads.data.device_decode import DeviceDecodeImageTextDecoder

            return DeviceDecodeImageTextDecoder(transform)
        return ImageTextDecoder(transform)
    module, name = ARCH_DECODERS[built.arch]
    return getattr(importlib.import_module(module), name)(transform, spec)
