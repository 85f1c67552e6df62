"""The one trainer trains every architecture from what its samples carry: grounding from referring expressions and
their boxes, video from clips; each checkpoints and resumes like image-text pretraining."""

from __future__ import annotations

import pytest
import torch

from vlp.platform.layout import RunLayout
from vlp.platform.spec import spec_from_dict
from vlp.platform.tracking.protocol import NullTracker
from vlp.workloads.data.shards import list_shards
from vlp.workloads.train.checkpoint import Checkpointer
from vlp.workloads.train.trainer import PretrainTrainer, TrainInputs


class Recorder(NullTracker):
    def __init__(self):
        self.metrics: dict[str, float] = {}

    def log_metrics(self, metrics, step):
        self.metrics.update({key: float(value) for key, value in metrics.items()})


@pytest.fixture(scope="module")
def clip_shards(tmp_path_factory) -> str:
    from vlp.workloads.data.shapes_video import VideoShapesParams, generate_shapes_video

    root = tmp_path_factory.mktemp("clips")
    generate_shapes_video(VideoShapesParams(samples=16, seed=0, image_size=32, frames=8, shard_size=8), str(root), processes=1)
    return str(root)


def train(tmp_path, shards: list[str], model: dict, steps: int, train_uri: str | None = None) -> tuple[PretrainTrainer, Recorder]:
    spec = spec_from_dict({
        "name": "other-archs", "model": {"preset": "shapes-vit-micro", **model},
        "train": {"batch_size": 8, "max_steps": steps, "warmup_steps": 1, "log_every": 1, "checkpoint_every": 100},
    })
    recorder = Recorder()
    trainer = PretrainTrainer(spec, TrainInputs(RunLayout(str(tmp_path), "run"), shards, lambda: recorder, train_uri=train_uri))
    trainer.train()
    return trainer, recorder


def test_grounding_trains_on_referring_expressions_and_resumes(tmp_path, shapes_shards):
    trainer, recorder = train(tmp_path, shapes_shards, {"arch": "transvg"}, 2)
    assert {"train/loss", "train/loss_l1", "train/loss_giou"} <= recorder.metrics.keys()
    assert "train/logit_scale" not in recorder.metrics or hasattr(trainer.model, "logit_scale")
    resumed, _ = train(tmp_path, shapes_shards, {"arch": "transvg"}, 3)
    assert Checkpointer(RunLayout(str(tmp_path), "run").checkpoints).load_latest()["step"] == 3


def test_video_trains_on_clips_with_motion_labels_for_the_unified_term(tmp_path, clip_shards):
    model = {"arch": "video", "video": {"frames": 4, "temporal_pooling": "transformer", "unified_contrastive_weight": 0.5}}
    trainer, recorder = train(tmp_path, list_shards(clip_shards), model, 2, train_uri=clip_shards)
    assert trainer.decoder.frames == 4 and trainer.decoder.classes  # the manifest's motions
    pixels, _, targets = next(iter(trainer.loader))
    assert pixels.shape[:3] == (8, 4, 3) and targets["label"].dtype == torch.long
    assert {"train/loss_contrastive", "train/loss_unified_contrastive"} <= recorder.metrics.keys()
