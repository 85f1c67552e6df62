"""What the training step does differently on a GPU, chosen once from the device, the spec and the model.

On CPU nothing changes (every choice below is off unless the spec asks for it). On CUDA:

- pinned host buffers for the loader's batches, so the copy to the device overlaps the step (`non_blocking`);
- channels_last images and weights for convolutional image towers (ResNet, MS-CLIP's conv stem), where cuDNN's
  NHWC kernels are faster; a ViT's only convolution is its patch embedding, which gains nothing worth a copy;
- `torch.compile` when `train.compile` is left unset and the run is long enough to earn back its compilation
  (minutes for a ViT-B; `COMPILE_PAYS_AFTER_STEPS` is a deliberately conservative bound, see docs/performance.md);
- JPEG decoding on the GPU (`train.decode_on_device`): `decode_jpeg_batch` decodes a batch with one nvJPEG call
  and vlp.workloads.data.device_decode crops and resizes it there; the GPU benchmark measures it against the CPU
  decode floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlp.platform.errors import SpecError
from vlp.platform.spec.data import AugmentSection
from vlp.platform.spec.train import TrainSection

# Compilation of a ViT-B/CLIP step costs on the order of a minute; at the ~0.1 s steps of an A100/H100 at batch 256 a
# 10-20% faster step repays it within a few hundred steps. Shorter runs (smoke tests, debugging) start sooner without.
COMPILE_PAYS_AFTER_STEPS = 1000


@dataclass(frozen=True)
class DevicePath:
    pin_memory: bool
    channels_last: bool
    compile: bool
    decode_on_device: bool = False

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


def choose_device_path(device: torch.device, train: TrainSection, model: torch.nn.Module, augment: AugmentSection | None = None) -> DevicePath:
    on_gpu = device.type == "cuda"
    crops_only = augment is None or not augment.enabled or (augment.color_jitter is None and not augment.grayscale_prob)
    decode_on_device = train.decode_on_device
    if decode_on_device is None:
        decode_on_device = on_gpu and crops_only and gpu_jpeg_decoder_available()
    elif decode_on_device and not crops_only:
        raise SpecError("train.decode_on_device: the device path applies crops only; turn off data.augment.color_jitter and grayscale_prob, or set decode_on_device: false")
    return DevicePath(
        pin_memory=on_gpu,
        channels_last=on_gpu and convolutional_image_tower(model),
        compile=train.compile if train.compile is not None else on_gpu and expected_steps(train) >= COMPILE_PAYS_AFTER_STEPS,
        decode_on_device=bool(decode_on_device),
    )


def convolutional_image_tower(model: torch.nn.Module) -> bool:
    """More than one 2-D convolution: a ResNet tower or a conv stem, not only a ViT's patch embedding."""
    return sum(isinstance(module, torch.nn.Conv2d) for module in model.modules()) > 1


def expected_steps(train: TrainSection) -> int:
    return train.max_steps if train.max_steps is not None else train.total_schedule_steps


def gpu_jpeg_decoder_available() -> bool:
    """torchvision decodes JPEGs on the GPU only when built with nvJPEG and a CUDA device is present."""
    if not torch.cuda.is_available():
        return False
    try:
        from torchvision.io import decode_jpeg

        decode_jpeg(_smallest_jpeg(), device="cuda")
        return True
    except (RuntimeError, ImportError):
        return False


def decode_jpeg_batch(encoded: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """uint8 [3, H, W] images from JPEG bytes (1-D uint8 tensors): one batched nvJPEG call on CUDA, one by one on CPU."""
    from torchvision.io import ImageReadMode, decode_jpeg

    if device.type == "cuda":
        return decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)
    return [decode_jpeg(data, mode=ImageReadMode.RGB) for data in encoded]


def _smallest_jpeg() -> torch.Tensor:
    from torchvision.io import encode_jpeg

    return encode_jpeg(torch.zeros(3, 8, 8, dtype=torch.uint8))
