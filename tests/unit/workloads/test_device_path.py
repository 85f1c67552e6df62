"""The GPU-only choices of the training step: chosen for CUDA, left as the spec says on CPU (no GPU needed)."""

from __future__ import annotations

import pytest
import torch

from vlp.platform.spec.train import TrainSection
from vlp.workloads.train.device_path import COMPILE_PAYS_AFTER_STEPS, choose_device_path, decode_jpeg_batch

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)


def model(preset: str) -> torch.nn.Module:
    from vlp.workloads.models.catalog import load_model_cfg
    from vlp.workloads.models.factory import build_model_from_cfg

    with torch.device("meta"):
        return build_model_from_cfg(load_model_cfg(preset)).model


def test_cpu_keeps_everything_as_the_spec_says():
    for preset in ("shapes-rn-tiny", "shapes-vit-micro"):
        path = choose_device_path(CPU, TrainSection(max_steps=10 * COMPILE_PAYS_AFTER_STEPS), model(preset))
        assert (path.pin_memory, path.channels_last, path.compile) == (False, False, False)
        assert path.memory_format == torch.contiguous_format
    assert choose_device_path(CPU, TrainSection(max_steps=10, compile=True), model("shapes-vit-micro")).compile


def test_cuda_pins_batches_and_uses_channels_last_for_convolutional_towers_only():
    resnet = choose_device_path(CUDA, TrainSection(max_steps=10), model("shapes-rn-tiny"))
    vit = choose_device_path(CUDA, TrainSection(max_steps=10), model("shapes-vit-micro"))
    assert resnet.pin_memory and vit.pin_memory
    assert resnet.channels_last and resnet.memory_format == torch.channels_last
    assert not vit.channels_last


@pytest.mark.parametrize(
    ("train", "compiled"),
    [
        ({"max_steps": COMPILE_PAYS_AFTER_STEPS}, True),
        ({"max_steps": COMPILE_PAYS_AFTER_STEPS - 1}, False),
        ({"max_seconds": 3600, "schedule_steps": 10 * COMPILE_PAYS_AFTER_STEPS}, True),
        ({"max_steps": 10 * COMPILE_PAYS_AFTER_STEPS, "compile": False}, False),
        ({"max_steps": 10, "compile": True}, True),
    ],
)
def test_cuda_compiles_by_default_when_the_run_is_long_enough(train, compiled):
    assert choose_device_path(CUDA, TrainSection(**train), model("shapes-vit-micro")).compile is compiled


def test_cpu_batch_decode_equals_torchvision_one_by_one():
    from torchvision.io import decode_jpeg, encode_jpeg

    generator = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, 16 + 8 * index, 24), dtype=torch.uint8, generator=generator) for index in range(3)]
    encoded = [encode_jpeg(image) for image in images]
    decoded = decode_jpeg_batch(encoded, CPU)
    assert all(torch.equal(got, decode_jpeg(data)) for got, data in zip(decoded, encoded))
    assert [tuple(image.shape) for image in decoded] == [tuple(image.shape) for image in images]
