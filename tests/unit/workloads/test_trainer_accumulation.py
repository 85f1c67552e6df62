"""The trainer with train.accum_steps computes the same gradients as without it (fp32, one process), also for
CoCa, whose captioning term is summed over the micro-batches."""

from __future__ import annotations

import pytest
import torch

from vlp.platform.layout import RunLayout
from vlp.platform.spec import spec_from_dict
from vlp.platform.tracking.protocol import NullTracker
from vlp.workloads.train.trainer import PretrainTrainer, TrainInputs


def first_step_gradients(tmp_path, shapes_shards, accum_steps: int, arch: str, contrastive: str) -> dict[str, torch.Tensor]:
    spec = spec_from_dict({
        "name": "accumulation",
        "model": {"arch": arch, "preset": "shapes-vit-micro"},
        "objective": {"contrastive": contrastive},
        "train": {"batch_size": 16, "max_steps": 1, "warmup_steps": 1, "accum_steps": accum_steps, "checkpoint_every": 100},
    })
    trainer = PretrainTrainer(spec, TrainInputs(RunLayout(str(tmp_path / f"{arch}-accum{accum_steps}"), "run"), shapes_shards, NullTracker))
    captured = {}
    step = trainer.optimizer.step

    def capture_then_step(*args, **kwargs):
        captured.update({name: parameter.grad.clone() for name, parameter in trainer.model.named_parameters() if parameter.grad is not None})
        return step(*args, **kwargs)

    trainer.optimizer.step = capture_then_step
    trainer.train()
    return captured


@pytest.mark.parametrize(("arch", "contrastive"), [("clip", "siglip"), ("coca", "infonce")])
def test_accumulated_gradients_equal_whole_batch_gradients(tmp_path, shapes_shards, arch, contrastive):
    whole = first_step_gradients(tmp_path, shapes_shards, 1, arch, contrastive)
    accumulated = first_step_gradients(tmp_path, shapes_shards, 4, arch, contrastive)
    assert whole.keys() == accumulated.keys() and "logit_scale" in whole
    for name, value in whole.items():
        assert torch.allclose(accumulated[name], value, atol=1e-6, rtol=1e-4), name
