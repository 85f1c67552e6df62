"""SIGTERM (a preempted pod, torchrun stopping its workers): the trainer finishes its step, writes a checkpoint
of that step and stops with `Preempted`; a new trainer resumes there and ends bitwise where an uninterrupted one
does. Runs the trainer in this process (one rank) so the signal lands at a known point."""

from __future__ import annotations

import os
import signal
import uuid

import pytest
import torch

from vlp.platform.layout import RunLayout
from vlp.platform.spec import spec_from_dict
from vlp.platform.tracking.protocol import NullTracker
from vlp.workloads.data.shapes import ShapesParams, generate_shapes
from vlp.workloads.train.checkpoint import Checkpointer
from vlp.workloads.train.preemption import Preempted
from vlp.workloads.train.trainer import PretrainTrainer, TrainInputs

STEPS, LOG_EVERY, SIGTERM_AT = 16, 2, 5


class RecordingTracker(NullTracker):
    """Keeps what is logged; sends this process SIGTERM once a step >= `sigterm_at` is logged."""

    def __init__(self, sigterm_at: int | None = None):
        self.points: list[tuple[str, int, float]] = []
        self.sigterm_at = sigterm_at

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.points.extend((key, step, value) for key, value in metrics.items())
        if self.sigterm_at is not None and step >= self.sigterm_at:
            self.sigterm_at = None
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("preempt-data")
    generate_shapes(ShapesParams(samples=64, seed=4, shard_size=16, image_size=32), str(root), processes=1)
    return sorted(str(path) for path in root.glob("*.tar"))


def trainer(root, run_id: str, shards: list[str], tracker) -> PretrainTrainer:
    spec = spec_from_dict({
        "name": "preempt", "seed": 3, "data": {"source": "shards", "train": str(root)}, "model": {"preset": "shapes-vit-micro"},
        "train": {"batch_size": 8, "max_steps": STEPS, "warmup_steps": 2, "checkpoint_every": 100, "log_every": LOG_EVERY, "threads_per_proc": 1},
    })
    return PretrainTrainer(spec, TrainInputs(layout=RunLayout(str(root), run_id), train_shards=shards, tracker_factory=lambda: tracker))


def test_sigterm_checkpoints_the_current_step_and_the_resumed_run_ends_bitwise_equal(tmp_path, shards):
    reference = trainer(tmp_path, "reference", shards, NullTracker())
    assert reference.train()["steps"] == STEPS
    expected = Checkpointer(RunLayout(str(tmp_path), "reference").checkpoints).load_latest()

    run_id = uuid.uuid4().hex
    before = RecordingTracker(sigterm_at=SIGTERM_AT)
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Preempted) as stopped:
        trainer(tmp_path, run_id, shards, before).train()
    assert signal.getsignal(signal.SIGTERM) == handler  # the trainer put the previous handler back
    checkpoints = Checkpointer(RunLayout(str(tmp_path), run_id).checkpoints)
    assert SIGTERM_AT <= stopped.value.step < STEPS and checkpoints.load_latest()["step"] == stopped.value.step

    after = RecordingTracker()
    assert trainer(tmp_path, run_id, shards, after).train()["steps"] == STEPS
    final = checkpoints.load_latest()
    for key, tensor in expected["model"].items():
        assert torch.equal(final["model"][key], tensor), key
    logged = sorted(step for key, step, _ in before.points + after.points if key == "train/loss")
    assert logged == list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))  # the step counter continued
