"""The device decoding path (encoded JPEGs decoded in the training process, on the GPU in production) gives the
same pixels as decoding in the loader workers, sample for sample, on CPU where both can run."""

from __future__ import annotations

import pytest
import torch

from vlp.platform.layout import RunLayout
from vlp.platform.spec import spec_from_dict
from vlp.platform.spec.data import AugmentSection
from vlp.platform.tracking.protocol import NullTracker
from vlp.workloads.data.device_decode import DeviceDecodeImageTextDecoder, EncodedBatch
from vlp.workloads.data.image_transforms import ImagePreprocess, ImageTransform
from vlp.workloads.data.loader import ImageTextDecoder, make_train_loader
from vlp.workloads.data.shapes import ShapesParams, generate_shapes
from vlp.workloads.data.shards import iter_shard, list_shards
from vlp.workloads.train.checkpoint import Checkpointer
from vlp.workloads.train.trainer import PretrainTrainer, TrainInputs

CPU = torch.device("cpu")
PREPROCESS = ImagePreprocess(size=(32, 32), mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))


@pytest.fixture(scope="module")
def jpeg_shards(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("jpeg-shapes")
    # Non-square images, so crops and the eval geometry really resize and cut.
    generate_shapes(ShapesParams(samples=48, seed=3, image_size=40, max_aspect_ratio=1.7, image_format="jpg", shard_size=24), str(root), processes=1)
    return list_shards(str(root))


def samples(shards: list[str]) -> list[dict]:
    return [sample for shard in shards for sample in iter_shard(shard)]


@pytest.mark.parametrize("augment", [AugmentSection(), None], ids=["crops", "eval-geometry"])
def test_decoding_on_the_device_gives_the_workers_pixels(jpeg_shards, augment):
    transform = ImageTransform(PREPROCESS, augment, exact=False)
    on_workers, on_device = ImageTextDecoder(transform), DeviceDecodeImageTextDecoder(transform)
    batch = samples(jpeg_shards)[:16]
    expected = on_workers.normalise(torch.stack([on_workers(sample, seed=100 + row)[0] for row, sample in enumerate(batch)]))
    decoded = [on_device(sample, seed=100 + row) for row, sample in enumerate(batch)]
    assert all(pixels.dim() == 1 for pixels, _, _ in decoded)  # the workers only read headers
    targets = [dict(sample_targets) for _, _, sample_targets in decoded]
    got = on_device.to_device(on_device.batch([pixels for pixels, _, _ in decoded], targets), CPU)
    assert targets == [{}] * len(batch)  # the crops travel in the batch, not as targets
    assert torch.equal(got, expected)


def test_images_that_are_not_jpeg_are_decoded_in_the_worker_and_travel_beside(jpeg_shards, shapes_shards):
    transform = ImageTransform(PREPROCESS, AugmentSection(), exact=False)
    on_device = DeviceDecodeImageTextDecoder(transform)
    mixed = samples(jpeg_shards)[:3] + samples(shapes_shards)[:3]  # JPEGs, then PNGs
    decoded = [on_device(sample, seed=row) for row, sample in enumerate(mixed)]
    assert [pixels.dim() for pixels, _, _ in decoded] == [1, 1, 1, 3, 3, 3]
    batch = on_device.batch([pixels for pixels, _, _ in decoded], [dict(targets) for _, _, targets in decoded])
    expected = torch.stack([ImageTextDecoder(transform)(sample, seed=row)[0] for row, sample in enumerate(mixed)])
    assert torch.equal(on_device.to_device(batch, CPU), transform.normalise(expected))


def test_a_jpeg_without_a_readable_header_is_bad_data():
    on_device = DeviceDecodeImageTextDecoder(ImageTransform(PREPROCESS, AugmentSection(), exact=False))
    with pytest.raises(ValueError, match="not a decodable JPEG"):
        on_device({"jpg": b"\xff\xd8 not really", "txt": b"a red circle"}, seed=0)


def test_colour_augmentation_is_refused_on_the_device_path():
    with pytest.raises(ValueError, match="crop augmentation only"):
        DeviceDecodeImageTextDecoder(ImageTransform(PREPROCESS, AugmentSection(color_jitter=(0.4, 0.4, 0.4, 0.1)), exact=False))


def test_the_loader_hands_over_encoded_batches(jpeg_shards):
    on_device = DeviceDecodeImageTextDecoder(ImageTransform(PREPROCESS, AugmentSection(), exact=False))
    loader = make_train_loader(jpeg_shards, on_device, lambda captions: torch.zeros(len(captions), 4, dtype=torch.long), 8, 0, 1, seed=0, workers=0)
    pixels, texts, targets = next(iter(loader))
    assert isinstance(pixels, EncodedBatch) and len(pixels.items) == 8 and pixels.crops.shape == (8, 4)
    assert targets == {} and texts.shape == (8, 4)


def test_training_with_decoding_in_the_training_process_runs_and_checkpoints(tmp_path, jpeg_shards):
    spec = spec_from_dict({
        "name": "device-decode", "model": {"preset": "shapes-vit-micro"},
        "train": {"batch_size": 8, "max_steps": 3, "warmup_steps": 1, "log_every": 1, "checkpoint_every": 100, "decode_on_device": True},
    })
    layout = RunLayout(str(tmp_path), "run")
    trainer = PretrainTrainer(spec, TrainInputs(layout, jpeg_shards, NullTracker))
    assert trainer.device_path.decode_on_device
    assert trainer.train()["steps"] == 3
    assert Checkpointer(layout.checkpoints).load_latest()["step"] == 3
