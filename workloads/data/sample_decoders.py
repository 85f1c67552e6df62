"""Which sample decoder feeds training: the architecture says what a sample must become.

A sample decoder turns one raw shard sample into `(uint8 pixels, text, targets)` — an image `[3, H, W]` or a clip
`[T, 3, H, W]`, the text the model reads (caption, referring expression), and the supervision the objective needs
(empty for image-text pairs) — and `normalise`s a stacked batch into the model's float input.
"""

from __future__ import annotations

import json

from vlp.platform.errors import SpecError
from vlp.platform.spec import ExperimentSpec
from vlp.workloads.data.image_transforms import ImageTransform
from vlp.workloads.data.loader import ImageTextDecoder
from vlp.workloads.data.video_codec import VIDEO_EXTENSIONS
from vlp.workloads.models.factory import BuiltModel



def _grounding_decoder(transform: ImageTransform, spec: ExperimentSpec, train_uri: str | None):
    from vlp.workloads.data.grounding_samples import GroundingDecoder

    return GroundingDecoder(transform, spec)


def _video_decoder(transform: ImageTransform, spec: ExperimentSpec, train_uri: str | None):
    """Clips of the model's T frames (`model.video.frames`), sampled as `data.video` says; with OmniVL's unified
    contrastive term, each clip's motion class (the manifest's motions) as its label."""
    from vlp.platform.spec.data import VideoSamplingOptions
    from vlp.workloads.data.video_samples import VideoTextDecoder

    sampling = spec.data.video or VideoSamplingOptions()
    classes: tuple[str, ...] = ()
    if spec.model.video.unified_contrastive_weight > 0 and train_uri is not None:
        from vlp.workloads.data.shards import read_manifest

        classes = tuple(read_manifest(train_uri).get("motions", ()))
    return VideoTextDecoder(transform, spec.model.video.frames, sampling.train_sampling, classes=classes)


# Architectures whose samples are not plain image-text pairs, and how their decoder is built.
ARCH_DECODERS = {"transvg": _grounding_decoder, "video": _video_decoder}

# What a training sample must carry for these architectures: a test on the raw sample, and how to say what is missing.
ARCH_SAMPLE_NEEDS = {
    "transvg": (lambda sample: bool(json.loads(sample.get("json") or b"{}").get("refexps")),
                "referring expressions with boxes (`refexps` in each sample's json, as the shapes generator writes them)"),
    "video": (lambda sample: any(key in sample for key in VIDEO_EXTENSIONS), "video file per sample (`.mp4`)"),
}


def check_training_samples(arch: str, shard_uri: str) -> None:
    """Refuse data the architecture cannot train on, from the first sample of a shard (before anything starts)."""
    if arch not in ARCH_SAMPLE_NEEDS:
        return
    from vlp.workloads.data.shards import iter_shard

    has, what = ARCH_SAMPLE_NEEDS[arch]
    first = next(iter(iter_shard(shard_uri)), None)
    if first is None or not has(first):
        raise SpecError(f"data.train: {shard_uri} has no {what}, which model.arch {arch} trains on; use data that has them")


def sample_decoder(spec: ExperimentSpec, built: BuiltModel, decode_on_device: bool = False, train_uri: str | None = None):
    """The training decoder for this experiment's architecture, with the model's training transform;
    `decode_on_device` leaves JPEG decoding of image-text pairs to the training device (see device_decode.py);
    `train_uri` is the training dataset (its manifest names the classes some decoders label with)."""
    transform = ImageTransform(built.preprocess, spec.data.augment, exact=False)
    if built.arch not in ARCH_DECODERS:
        if decode_on_device:
            from vlp.workloads.data.device_decode import DeviceDecodeImageTextDecoder

            return DeviceDecodeImageTextDecoder(transform)
        return ImageTextDecoder(transform)
    return ARCH_DECODERS[built.arch](transform, spec, train_uri)
