"""The trainer's speed-up switches: fused AdamW, activation checkpointing, metrics read without stalling the step,
and a stop agreement without a blocking collective."""

from __future__ import annotations

import pytest
import torch

from vlp.platform.errors import SpecError
from vlp.workloads.models.factory import build_model_from_cfg
from vlp.workloads.train.activation_checkpointing import enable_activation_checkpointing
from vlp.workloads.train.device_metrics import DeviceMetrics
from vlp.workloads.train.optim import build_optimizer
from vlp.workloads.train.stop_agreement import StopAgreement

TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 16, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 32, "heads": 2, "layers": 2},
}


def tiny_batch():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(4, 3, 16, 16, generator=generator), torch.randint(1, 100, (4, 8), generator=generator)


def gradients(model) -> dict[str, torch.Tensor]:
    images, texts = tiny_batch()
    outputs = model(images, texts)
    (outputs["image_features"] @ outputs["text_features"].T).logsumexp(1).mean().backward()
    return {name: parameter.grad.clone() for name, parameter in model.named_parameters() if parameter.grad is not None}


def test_fused_and_foreach_adamw_take_the_same_step():
    torch.manual_seed(0)
    models = [build_model_from_cfg(TINY).model for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    for model, fused in zip(models, (True, False)):
        optimizer = build_optimizer(model, 1e-2, 0.1, fused=fused)
        assert optimizer.defaults["fused"] is (True if fused else None) and optimizer.defaults["foreach"] is (None if fused else True)
        gradients(model)
        optimizer.step()
    for (name, fused), (_, foreach) in zip(models[0].state_dict().items(), models[1].state_dict().items()):
        torch.testing.assert_close(fused, foreach, msg=name)


def test_activation_checkpointing_keeps_the_gradients():
    torch.manual_seed(0)
    plain = build_model_from_cfg(TINY).model
    checkpointed = build_model_from_cfg(TINY).model
    checkpointed.load_state_dict(plain.state_dict())
    assert enable_activation_checkpointing(checkpointed) == 2  # the image and the text transformer
    expected, actual = gradients(plain), gradients(checkpointed)
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], msg=name)
    with pytest.raises(SpecError, match="grad_checkpointing"):
        enable_activation_checkpointing(torch.nn.Linear(2, 2))


def test_device_metrics_arrive_in_order_with_the_host_values():
    metrics = DeviceMetrics(torch.device("cpu"))
    loss = torch.tensor(2.0, requires_grad=True) * 1.5
    metrics.push(10, {"train/loss": loss, "train/logit_scale": torch.tensor(14.0)}, {"train/lr": 0.1})
    metrics.push(20, {"train/loss": torch.tensor(1.0)}, {})
    assert metrics.ready() == [(10, {"train/loss": 3.0, "train/logit_scale": 14.0, "train/lr": 0.1}), (20, {"train/loss": 1.0})]
    assert metrics.ready(wait=True) == []


def test_stop_agreement_on_one_process_answers_at_once():
    agreement = StopAgreement()
    assert [agreement.should_stop(flag) for flag in (False, True)] == [False, True]
    agreement.close()


def test_all_ranks_stop_at_the_same_step_one_after_the_first_asked():
    from stop_workers import run_two, stop_when_rank_one_asks

    rank0, rank1 = run_two(stop_when_rank_one_asks, 3)
    assert rank0 == rank1 == [False, False, False, False, True, True]
