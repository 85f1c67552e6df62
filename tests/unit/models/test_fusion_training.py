"""The fusion architectures through the one trainer: their loss terms are logged, and a run resumed from a checkpoint
ends with the same weights as an uninterrupted one (masks and ITM negatives come back from the saved generator)."""

from __future__ import annotations

import pytest
import torch

from vlp.platform.layout import RunLayout
from vlp.platform.spec import spec_from_dict
from vlp.platform.tracking.protocol import NullTracker
from vlp.workloads.train.trainer import PretrainTrainer, TrainInputs


class Recorder(NullTracker):
    def __init__(self):
        self.metrics: dict[int, dict[str, float]] = {}

    def log_metrics(self, metrics, step):
        self.metrics.setdefault(step, {}).update({key: float(value) for key, value in metrics.items()})


def train(root, shards: list[str], model: dict, steps: int) -> tuple[PretrainTrainer, Recorder]:
    spec = spec_from_dict({
        "name": "fusion-training", "model": {"preset": "shapes-vit-micro", **model},
        "train": {"batch_size": 8, "max_steps": steps, "schedule_steps": 4, "warmup_steps": 1, "log_every": 1, "checkpoint_every": 2},
    })
    recorder = Recorder()
    trainer = PretrainTrainer(spec, TrainInputs(RunLayout(str(root), "run"), shards, lambda: recorder))
    trainer.train()
    return trainer, recorder


CASES = [
    ({"arch": "flava", "fusion": {"alignment_weight": 0.5}}, {"contrastive", "itm", "mlm", "mim", "unimodal_mlm", "unimodal_mim", "alignment"}),
    ({"arch": "multiway", "masked_modeling": {"enabled": True, "image_masking": "block"}}, {"image_mim", "text_mlm", "pair_mlm", "pair_mim"}),
]


@pytest.mark.parametrize(("model", "terms"), CASES, ids=["flava", "beit3"])
def test_logs_every_term(tmp_path, shapes_shards, model, terms):
    _, recorder = train(tmp_path, shapes_shards, model, 2)
    assert {"train/loss", *(f"train/loss_{name}" for name in terms)} <= recorder.metrics[2].keys()


# Masks and ITM negatives draw from torch's generator: a resumed run must continue its stream exactly (the train
# loader's DataLoader once drew a worker seed from it when a resumed run made its iterator).
@pytest.mark.parametrize("model", [CASES[0][0]], ids=["flava"])
def test_resumes_to_the_same_weights(tmp_path, shapes_shards, model):
    straight, recorder = train(tmp_path / "straight", shapes_shards, model, 4)
    train(tmp_path / "resumed", shapes_shards, model, 2)
    resumed, resumed_recorder = train(tmp_path / "resumed", shapes_shards, model, 4)
    assert resumed_recorder.metrics[4]["train/loss"] == pytest.approx(recorder.metrics[4]["train/loss"], abs=1e-5)
    for (name, expected), got in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(expected, got, atol=1e-6), name
