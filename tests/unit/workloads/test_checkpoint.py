from __future__ import annotations

import torch

from vlp.workloads.train.checkpoint import Checkpointer, load_checkpoint


def test_checkpoints_round_trip_prune_and_point_latest(tmp_path):
    checkpointer = Checkpointer(str(tmp_path / "ckpt"), keep_last=2)
    assert checkpointer.load_latest() is None
    for step in (10, 20, 30):
        checkpointer.save({"step": step, "weights": torch.full((2,), float(step))}, step)
    names = sorted(path.name for path in (tmp_path / "ckpt").iterdir())
    assert names == ["latest.json", "step-00000020.pt", "step-00000030.pt"]
    latest = checkpointer.load_latest()
    assert latest["step"] == 30 and torch.equal(latest["weights"], torch.full((2,), 30.0))
    assert load_checkpoint(checkpointer.latest_uri())["step"] == 30
