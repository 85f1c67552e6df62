"""Model FLOPs utilization: FLOPs of one training step counted by torch, against the device's peak.

FLOPs are counted with `torch.utils.flop_counter.FlopCounterMode` on the meta device: shapes only, no compute,
so counting ViT-B-32 at batch 256 takes a second on any machine. On meta, attention decomposes into the matmuls
it performs (a fused CPU attention kernel would not be counted at all).
"""

from __future__ import annotations

from typing import Any

import torch

# Dense (no sparsity) peak TFLOP/s per device from NVIDIA's datasheets. Matched as substrings of
# torch.cuda.get_device_name(), first match wins (so "L40S" before "L4", "A100" before "A10").
PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H100 PCIe", {"bf16": 756.0, "fp32": 51.2}),
    ("H100 NVL", {"bf16": 835.0, "fp32": 60.0}),
    ("H200 NVL", {"bf16": 835.0, "fp32": 60.0}),
    ("GH200", {"bf16": 989.4, "fp32": 66.9}),
    ("H200", {"bf16": 989.4, "fp32": 66.9}),
    ("H100", {"bf16": 989.4, "fp32": 66.9}),
    ("A100", {"bf16": 312.0, "fp32": 19.5}),
    ("L40S", {"bf16": 362.1, "fp32": 91.6}),
    ("L4", {"bf16": 121.0, "fp32": 30.3}),
    ("A10", {"bf16": 125.0, "fp32": 31.2}),
)


def peak_tflops(device_name: str | None, precision: str) -> float | None:
    """The datasheet peak for this device and precision, or None when the table does not know it (CPUs)."""
    if not device_name:
        return None
    for fragment, peaks in PEAK_TFLOPS:
        if fragment in device_name:
            return peaks.get(precision)
    return None


def training_flops_per_sample(model_cfg: dict[str, Any], batch_size: int = 8) -> float:
    """FLOPs of forward + backward of the model per image-text pair (the loss itself is not counted: it is
    O(batch²·embed_dim), negligible next to the towers)."""
    return count_flops(model_cfg, batch_size, backward=True) / batch_size


def count_flops(model_cfg: dict[str, Any], batch_size: int, backward: bool) -> int:
    """FLOPs (multiply and add counted apart) of one forward pass, and the backward pass if asked, on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    from vlp.workloads.models.factory import build_model_from_cfg

    with torch.device("meta"):
        built = build_model_from_cfg(model_cfg)
        context_length = model_cfg["text_cfg"].get("context_length", 77)
        vocab_size = model_cfg["text_cfg"].get("vocab_size", 49408)
        images = torch.randn(batch_size, 3, built.image_size, built.image_size)
        texts = torch.randint(0, vocab_size, (batch_size, context_length))
    counter = FlopCounterMode(display=False)
    with counter:
        outputs = built.model(images, texts)
        if backward:
            scalar_of(outputs).backward()
    return counter.get_total_flops()


def scalar_of(outputs: Any) -> torch.Tensor:
    """One scalar that depends on every floating-point output, so backward reaches every tower and head."""
    tensors = outputs.values() if isinstance(outputs, dict) else outputs if isinstance(outputs, (tuple, list)) else [outputs]
    total = None
    for tensor in tensors:
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and tensor.requires_grad:
            term = tensor.float().mean()
            total = term if total is None else total + term
    if total is None:
        raise ValueError("the model returned no output that depends on its parameters")
    return total


def mfu(samples_per_second: float | None, flops_per_sample: float, peak_tflops_per_device: float | None, devices: int) -> float | None:
    """Achieved FLOP/s over the peak of all devices together (None when the peak is unknown)."""
    if samples_per_second is None or not peak_tflops_per_device or devices < 1:
        return None
    return samples_per_second * flops_per_sample / (peak_tflops_per_device * 1e12 * devices)
