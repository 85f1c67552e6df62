"""FLOP counting on the meta device against a hand count, and the MFU arithmetic."""

from __future__ import annotations

import pytest

from vlp.benchmarks.flops import count_flops, mfu, peak_tflops, training_flops_per_sample

TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 16, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16, "mlp_ratio": 4.0},
    "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 32, "heads": 2, "layers": 1},
}


def block_flops(batch: int, tokens: int, width: int) -> int:
    """One transformer block, 2 FLOPs per multiply-add: qkv, attention scores, attention × values, out proj, MLP (4×)."""
    return 2 * batch * (tokens * width * 3 * width + 2 * tokens * tokens * width + tokens * width * width + 2 * tokens * width * 4 * width)


def test_forward_flops_match_a_hand_count():
    batch, embed, width = 2, 16, 32
    patches = (16 // 8) ** 2
    vision = 2 * batch * (3 * 8 * 8) * width * patches + block_flops(batch, patches + 1, width) + 2 * batch * width * embed
    text = block_flops(batch, 8, width) + 2 * batch * width * embed
    assert count_flops(TINY, batch, backward=False) == vision + text


def test_training_flops_add_the_backward_pass_per_sample():
    forward = count_flops(TINY, 4, backward=False) / 4
    training = training_flops_per_sample(TINY, batch_size=4)
    # Backward costs about twice the forward (less for the first layer, whose input needs no gradient).
    assert 2.5 * forward < training <= 3 * forward
    assert training_flops_per_sample(TINY, batch_size=2) == pytest.approx(training)


def test_mfu_and_peaks():
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bf16") == pytest.approx(989.4)
    assert peak_tflops("NVIDIA H100 PCIe", "bf16") == pytest.approx(756.0)
    assert peak_tflops("NVIDIA L40S", "bf16") == pytest.approx(362.1)  # not L4's
    assert peak_tflops("NVIDIA A100-SXM4-80GB", "fp32") == pytest.approx(19.5)  # not A10's
    assert peak_tflops(None, "bf16") is None and peak_tflops("Some CPU", "fp32") is None
    # 1000 samples/s × 1 GFLOP = 1 TFLOP/s on 2 devices of 10 TFLOP/s.
    assert mfu(1000.0, 1e9, 10.0, 2) == pytest.approx(0.05)
    assert mfu(None, 1e9, 10.0, 1) is None and mfu(1000.0, 1e9, None, 1) is None
