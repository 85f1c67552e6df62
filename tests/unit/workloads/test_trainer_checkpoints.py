"""What the trainer saves and how it resumes: every checkpoint of an open_clip model carries open_clip's files, and a
resume that finds the latest checkpoint corrupted goes back to the previous one and says so on the run."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import open_clip
import pytest
import torch

from vlp.platform.layout import RunLayout
from vlp.platform.storage import join, open_storage
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
    manifest = json.loads(Path(layout.checkpoints, "latest.json").read_text())
    assert [entry["step"] for entry in manifest["history"]] == [2, 4]
    assert all(Path(entry["beside"], "open_clip_config.json").is_file() for entry in manifest["history"])
    latest = Checkpointer(layout.checkpoints).load_latest()
    theirs = open_clip.create_model(f"local-dir:{manifest['beside']}")
    for key, value in latest["model"].items():
        assert torch.equal(theirs.state_dict()[key], value), key
    assert_a_corrupted_latest_resumes_from_the_one_before(layout, shapes_shards)


def test_a_checkpoint_corrupted_in_s3_resumes_from_the_one_before(s3_env, s3_bucket, shapes_shards):
    layout = RunLayout(f"s3://{s3_bucket}/trust-{uuid.uuid4().hex[:8]}", "run")
    PretrainTrainer(spec(4), TrainInputs(layout, shapes_shards, TagRecorder)).train()
    assert_a_corrupted_latest_resumes_from_the_one_before(layout, shapes_shards)


def assert_a_corrupted_latest_resumes_from_the_one_before(layout: RunLayout, shapes_shards) -> None:
    storage = open_storage(layout.checkpoints)
    manifest_uri = join(layout.checkpoints, "latest.json")
    step_4 = json.loads(storage.read_bytes(manifest_uri))["uri"]
    storage.write_bytes(step_4, storage.read_bytes(step_4)[:-100])
    tracker = TagRecorder()
    resumed = PretrainTrainer(spec(6), TrainInputs(layout, shapes_shards, lambda: tracker))
    assert resumed.train()["steps"] == 6
    assert tracker.tags["vlp.checkpoint_fallback"].startswith(f"resumed from step 2; skipped {step_4}")
    manifest = json.loads(storage.read_bytes(manifest_uri))
    assert manifest["step"] == 6 and step_4 not in [entry["uri"] for entry in manifest["history"]]
    assert not storage.exists(step_4) and Checkpointer(layout.checkpoints).restore().skipped == []
