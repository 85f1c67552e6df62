"""The trainer builds model and objective from the sections, logs parameter and shared-parameter counts, and keeps
the objective's state (NLIP's schedule and mixture) through a checkpoint and a resume."""

from __future__ import annotations

from vlp.platform.layout import RunLayout
from vlp.platform.spec import spec_from_dict
from vlp.platform.tracking.protocol import NullTracker
from vlp.workloads.models.factory import build_model, count_parameters, count_shared_parameters
from vlp.workloads.train.checkpoint import Checkpointer
from vlp.workloads.train.trainer import PretrainTrainer, TrainInputs


class RecordingTracker(NullTracker):
    def __init__(self):
        self.params, self.tags, self.metrics = {}, {}, []

    def log_params(self, params):
        self.params.update(params)

    def set_tags(self, tags):
        self.tags.update(tags)

    def log_metrics(self, metrics, step):
        self.metrics.append((step, dict(metrics)))


def spec(max_steps: int):
    return spec_from_dict({
        "name": "trainer-test",
        "model": {"arch": "msclip", "preset": "shapes-vit-micro", "pooling": "ggem"},
        "objective": {"noise": "nlip", "nlip": {"warmup_steps": 2, "refresh_every": 1, "history": 64, "em_iterations": 5}},
        "train": {"batch_size": 8, "max_steps": max_steps, "warmup_steps": 1, "log_every": 2, "checkpoint_every": 100},
    })


def test_counts_are_logged_and_the_objective_state_resumes(tmp_path, shapes_shards):
    layout = RunLayout(str(tmp_path), "run")
    tracker = RecordingTracker()
    PretrainTrainer(spec(4), TrainInputs(layout, shapes_shards, lambda: tracker)).train()

    reference = build_model(spec(4).model).model
    total, shared = count_parameters(reference), count_shared_parameters(reference)
    assert shared > 0
    assert tracker.tags["vlp.parameters"] == str(total) and tracker.tags["vlp.shared_parameters"] == str(shared)
    assert tracker.params["model.parameters"] == str(total) and tracker.params["model.shared_parameters"] == str(shared)
    assert (0, {"model/parameters": total, "model/shared_parameters": shared}) in tracker.metrics
    logged = dict(tracker.metrics[-1][1])
    assert "nlip/noisy_prior" in logged and 0.0 <= logged["nlip/mean_noise_probability"] <= 1.0

    state = Checkpointer(layout.checkpoints).load_latest()
    assert int(state["objective"]["harmonizer.step"]) == 4

    resumed = PretrainTrainer(spec(6), TrainInputs(layout, shapes_shards, lambda: RecordingTracker()))
    resumed.train()
    assert int(resumed.loss.harmonizer.step) == 6
    assert int(Checkpointer(layout.checkpoints).load_latest()["objective"]["harmonizer.step"]) == 6
