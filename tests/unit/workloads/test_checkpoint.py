from __future__ import annotations

import json
import random

import numpy as np
import torch

from vlp.workloads.train.checkpoint import Checkpointer, load_checkpoint, restore_rng_state, rng_state


def test_checkpoints_round_trip_prune_and_point_latest(tmp_path):
    checkpointer = Checkpointer(str(tmp_path / "ckpt"), keep_last=2)
    assert checkpointer.load_latest() is None
    uris = [checkpointer.save({"step": step, "weights": torch.full((2,), float(step))}, step) for step in (10, 20, 30)]
    names = sorted(path.name for path in (tmp_path / "ckpt").iterdir())
    assert names == sorted(["latest.json", uris[1].rsplit("/", 1)[1], uris[2].rsplit("/", 1)[1]])
    assert all(name.startswith(("step-00000020-", "step-00000030-", "latest")) for name in names)
    latest = checkpointer.load_latest()
    assert latest["step"] == 30 and torch.equal(latest["weights"], torch.full((2,), 30.0))
    assert load_checkpoint(checkpointer.latest_uri())["step"] == 30
    manifest = json.loads((tmp_path / "ckpt" / "latest.json").read_text())
    assert [entry["step"] for entry in manifest["history"]] == [20, 30]


def test_saving_a_step_again_never_overwrites_what_latest_points_to(tmp_path):
    checkpointer = Checkpointer(str(tmp_path / "ckpt"), keep_last=3)
    first = checkpointer.save({"step": 5, "v": torch.zeros(1)}, 5)
    second = checkpointer.save({"step": 5, "v": torch.ones(1)}, 5)
    assert first != second and checkpointer.latest_uri() == second
    manifest = json.loads((tmp_path / "ckpt" / "latest.json").read_text())
    assert [entry["uri"] for entry in manifest["history"]] == [second]
    assert not (tmp_path / "ckpt" / first.rsplit("/", 1)[1]).exists()


def test_orphan_of_an_interrupted_upload_is_never_latest_and_is_pruned(tmp_path):
    root = tmp_path / "ckpt"
    checkpointer = Checkpointer(str(root), keep_last=2)
    checkpointer.save({"step": 10}, 10)
    # A crash between the object upload and the manifest switch leaves an object nothing points to.
    orphan = root / "step-00000020-deadbeef.pt"
    orphan.write_bytes(b"half a checkpoint")
    assert checkpointer.load_latest()["step"] == 10
    checkpointer.save({"step": 20}, 20)
    assert not orphan.exists() and checkpointer.load_latest()["step"] == 20


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    state = rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    uri = Checkpointer(str(tmp_path)).save({"rng": state, "scaler": torch.amp.GradScaler("cpu", init_scale=128.0).state_dict()}, 1)
    loaded = load_checkpoint(uri)
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    restore_rng_state(loaded["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]
    assert loaded["scaler"]["scale"] == 128.0
