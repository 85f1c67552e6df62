from __future__ import annotations

import hashlib
import json
import logging
import random
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from vlp.platform.errors import VlpUserError
from vlp.workloads.train.checkpoint import CheckpointError, Checkpointer, load_checkpoint, restore_rng_state, rng_state


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


def test_manifest_records_each_checkpoints_size_and_sha256(tmp_path):
    checkpointer = Checkpointer(str(tmp_path / "ckpt"), keep_last=2)
    for step in (1, 2):
        checkpointer.save({"step": step, "v": torch.full((3,), float(step))}, step)
    manifest = json.loads((tmp_path / "ckpt" / "latest.json").read_text())
    for entry in [manifest, *manifest["history"]]:
        data = Path(entry["uri"]).read_bytes()
        assert entry["size"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["history"][-1] == {key: value for key, value in manifest.items() if key != "history"}


def corrupt_in_place(data: bytes) -> bytes:
    """Same length, one byte flipped in the middle: only the digest can tell."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


CORRUPTIONS = {
    "flipped byte": corrupt_in_place,
    "truncated": lambda data: data[: len(data) // 2],
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_corrupted_latest_falls_back_to_the_previous_checkpoint(tmp_path, caplog, corruption):
    checkpointer = Checkpointer(str(tmp_path / "ckpt"), keep_last=3)
    for step in (10, 20, 30):
        checkpointer.save({"step": step}, step)
    latest = Path(checkpointer.latest_uri())
    latest.write_bytes(CORRUPTIONS[corruption](latest.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="vlp.workloads.train.checkpoint"):
        restored = checkpointer.restore()
    assert restored.state["step"] == 20 and restored.entry["step"] == 20
    assert len(restored.skipped) == 1 and restored.skipped[0].startswith(str(latest))
    assert str(latest) in caplog.text and "step 20 instead of the latest" in caplog.text
    assert checkpointer.latest_uri() == str(latest)  # the lookup stays torch-free and unverified
    # Training on from step 20 saves step 30 again: the bad entry leaves the history and its object is pruned.
    checkpointer.save({"step": 30, "again": True}, 30)
    assert checkpointer.restore().skipped == [] and checkpointer.load_latest()["again"]
    assert not latest.exists()


def test_loading_one_checkpoint_by_uri_checks_it_against_its_manifest(tmp_path):
    """What the evaluate and register steps, `vlp eval` and `vlp export` read: no fallback, a clear error."""
    checkpointer = Checkpointer(str(tmp_path / "ckpt"), keep_last=2)
    first = checkpointer.save({"step": 1}, 1)
    second = checkpointer.save({"step": 2}, 2)
    Path(first).write_bytes(corrupt_in_place(Path(first).read_bytes()))
    assert load_checkpoint(second)["step"] == 2
    with pytest.raises(CheckpointError, match="sha256 differs"):
        load_checkpoint(first)
    loose = tmp_path / "elsewhere" / "step-00000001.pt"
    loose.parent.mkdir()
    torch.save({"step": 1}, loose)
    assert load_checkpoint(str(loose))["step"] == 1  # no manifest beside it: nothing to check against


def test_a_checkpoint_with_the_recorded_size_and_digest_that_torch_cannot_read_is_skipped(tmp_path):
    """The digest guards the bytes after the save; bytes that were bad before it (or a manifest from before
    digests) are caught by unpickling."""
    root = tmp_path / "ckpt"
    checkpointer = Checkpointer(str(root), keep_last=2)
    checkpointer.save({"step": 1}, 1)
    checkpointer.save({"step": 2}, 2)
    manifest = json.loads((root / "latest.json").read_text())
    garbage = b"not a torch file"
    Path(manifest["uri"]).write_bytes(garbage)
    for entry in [manifest, manifest["history"][-1]]:
        entry.update(size=len(garbage), sha256=hashlib.sha256(garbage).hexdigest())
    (root / "latest.json").write_text(json.dumps(manifest))
    restored = checkpointer.restore()
    assert restored.state["step"] == 1 and "unreadable" in restored.skipped[0]


def test_a_missing_latest_object_falls_back_and_manifests_without_digests_still_load(tmp_path):
    root = tmp_path / "ckpt"
    checkpointer = Checkpointer(str(root), keep_last=2)
    checkpointer.save({"step": 1}, 1)
    checkpointer.save({"step": 2}, 2)
    manifest = json.loads((root / "latest.json").read_text())
    Path(manifest["uri"]).unlink()
    # A manifest written before digests were recorded: entries hold step and uri only.
    (root / "latest.json").write_text(json.dumps({"step": 2, "uri": manifest["uri"], "history": [{"step": e["step"], "uri": e["uri"]} for e in manifest["history"]]}))
    restored = checkpointer.restore()
    assert restored.state["step"] == 1 and "no such file" in restored.skipped[0]


def test_every_checkpoint_corrupted_is_one_clear_error(tmp_path):
    root = tmp_path / "ckpt"
    checkpointer = Checkpointer(str(root), keep_last=2)
    uris = [checkpointer.save({"step": step}, step) for step in (1, 2)]
    for uri in uris:
        Path(uri).write_bytes(corrupt_in_place(Path(uri).read_bytes()))
    with pytest.raises(CheckpointError) as raised:
        checkpointer.load_latest()
    message = str(raised.value)
    assert "\n" not in message and all(uri in message for uri in uris)
    assert "no checkpoint passes its check" in message and f"delete {root / 'latest.json'}" in message
    assert isinstance(raised.value, VlpUserError)


def test_files_saved_beside_a_checkpoint_live_and_are_pruned_with_it(tmp_path):
    root = tmp_path / "ckpt"
    checkpointer = Checkpointer(str(root), keep_last=1)
    first = checkpointer.save({"step": 1}, 1, beside={"a.json": b"{}", "b.bin": b"1"})
    folder = Path(first.removesuffix(".pt"))
    assert json.loads((root / "latest.json").read_text())["beside"] == str(folder)
    assert sorted(path.name for path in folder.iterdir()) == ["a.json", "b.bin"]
    second = checkpointer.save({"step": 2}, 2, beside={"a.json": b"[]"})
    assert not folder.exists()
    assert (Path(second.removesuffix(".pt")) / "a.json").read_bytes() == b"[]"
    checkpointer.save({"step": 3}, 3)
    assert sorted(path.name for path in root.iterdir()) == ["latest.json", Path(checkpointer.latest_uri()).name]


def test_corrupted_checkpoints_in_s3_fall_back_then_fail_clearly(s3_env, s3_bucket):
    import boto3

    from vlp.platform.storage.uris import split_s3

    s3 = boto3.client("s3", endpoint_url=s3_env.url, region_name="us-east-1")

    def corrupt(uri: str) -> None:
        bucket, key = split_s3(uri)
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        s3.put_object(Bucket=bucket, Key=key, Body=corrupt_in_place(data))

    checkpointer = Checkpointer(f"s3://{s3_bucket}/checkpoint-trust/{uuid.uuid4().hex}", keep_last=2)
    first = checkpointer.save({"step": 1, "w": torch.arange(4.0)}, 1)
    second = checkpointer.save({"step": 2, "w": torch.arange(4.0) * 2}, 2)
    corrupt(second)
    restored = checkpointer.restore()
    assert restored.state["step"] == 1 and torch.equal(restored.state["w"], torch.arange(4.0))
    assert restored.skipped[0].startswith(second) and "sha256" in restored.skipped[0]
    corrupt(first)
    with pytest.raises(CheckpointError, match="no checkpoint passes its check"):
        checkpointer.restore()
