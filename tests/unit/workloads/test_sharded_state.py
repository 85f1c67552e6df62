"""Sharded checkpoints in storage (here S3 on moto, one process): the shards travel with digests in the manifest,
restore into the model and optimizer, and a damaged shard makes the checkpoint fall back like a damaged object."""

from __future__ import annotations

import shutil

import torch

from vlp.platform.storage import join, open_storage
from vlp.workloads.train.checkpoint import Checkpointer
from vlp.workloads.train.sharded_state import load_sharded, save_sharded


def model_and_optimizer(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    return model, optimizer


def save(checkpointer: Checkpointer, step: int, seed: int):
    model, optimizer = model_and_optimizer(seed)
    name = checkpointer.new_name(step)
    shards = save_sharded(model, optimizer, checkpointer.folder(name))
    checkpointer.save({"step": step}, step, shards=shards, name=name)
    return model, optimizer, name


def restored_into_fresh(checkpointer: Checkpointer):
    restored = checkpointer.restore()
    model, optimizer = model_and_optimizer(99)
    try:
        load_sharded(model, optimizer, restored.shards)
    finally:
        shutil.rmtree(restored.shards)
    return restored, model, optimizer


def test_shards_round_trip_and_a_damaged_shard_falls_back(s3_env, s3_bucket):
    checkpointer = Checkpointer(f"s3://{s3_bucket}/sharded-run/checkpoints")
    older, older_optimizer, _ = save(checkpointer, 1, seed=1)
    newer, newer_optimizer, name = save(checkpointer, 2, seed=2)

    restored, model, optimizer = restored_into_fresh(checkpointer)
    assert restored.entry["step"] == 2 and ".metadata" in restored.entry["shards"]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), newer.state_dict().values()))
    assert torch.equal(optimizer.state[optimizer.param_groups[0]["params"][0]]["exp_avg"],
                       newer_optimizer.state[newer_optimizer.param_groups[0]["params"][0]]["exp_avg"])

    shard = next(filename for filename in restored.entry["shards"] if filename.endswith(".distcp"))
    uri = join(checkpointer.folder(name), shard)
    data = bytearray(open_storage(uri).read_bytes(uri))
    data[-1] ^= 0xFF
    open_storage(uri).write_bytes(uri, bytes(data))
    restored, model, _ = restored_into_fresh(checkpointer)
    assert restored.entry["step"] == 1 and shard in restored.skipped[0] and "sha256" in restored.skipped[0]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), older.state_dict().values()))
