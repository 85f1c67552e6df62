"""What the trainer saves and how it resumes: every checkpoint of an open_clip model carries open_clip's files, and a
resume that finds the latest checkpoint corrupted goes back to the previous one and says so on the run."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch

from vlp.platform.layout import RunLayout
from vlp.platform.spec import spec_from_dict
from vlp.platform.tracking.protocol import NullTracker
from vlp.workloads.train.checkpoint import Checkpointer
from vlp.workloads.train.trainer import PretrainTrainer, TrainInputs

pytestmark = pytest.mark.usefixtures("one_thread")


class TagRecorder(NullTracker):
    def __init__(self):
        self.tags = {}

    def set_tags(self, tags):
        self.tags.update(tags)


def spec(max_steps: int):
    return spec_from_dict({
        "name": "checkpoint-trust",
        "model": {"arch": "clip", "preset": "shapes-vit-micro"},
        "train": {"batch_size": 8, "max_steps": max_steps, "warmup_steps": 1, "log_every": 2, "checkpoint_every": 2},
    })


def test_checkpoints_carry_open_clip_files_and_a_corrupted_latest_resumes_from_the_one_before(tmp_path, shapes_shards):
    layout = RunLayout(str(tmp_path), "run")
    PretrainTrainer(spec(4), TrainInputs(layout, shapes_shards, TagRecorder)).train()
    checkpointer = Checkpointer(layout.checkpoints)
    manifest = json.loads(Path(layout.checkpoints, "latest.json").read_text())
    assert [entry["step"] for entry in manifest["history"]] == [2, 4]
    assert all(Path(entry["beside"], "open_clip_config.json").is_file() for entry in manifest["history"])
    latest = checkpointer.load_latest()
    theirs = open_clip.create_model(f"local-dir:{manifest['beside']}")
    for key, value in latest["model"].items():
        assert torch.equal(theirs.state_dict()[key], value), key

    step_4 = Path(manifest["uri"])
    step_4.write_bytes(step_4.read_bytes()[:-100])
    tracker = TagRecorder()
    resumed = PretrainTrainer(spec(6), TrainInputs(layout, shapes_shards, lambda: tracker))
    assert resumed.train()["steps"] == 6
    assert tracker.tags["vlp.checkpoint_fallback"].startswith(f"resumed from step 2; skipped {step_4}")
    manifest = json.loads(Path(layout.checkpoints, "latest.json").read_text())
    assert manifest["step"] == 6 and str(step_4) not in [entry["uri"] for entry in manifest["history"]]
    assert not step_4.exists() and checkpointer.restore().skipped == []
