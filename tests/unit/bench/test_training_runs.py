"""Both trainers really run under the step clock on the same shards: one tiny run each, one process."""

from __future__ import annotations

import json
import tarfile

import pytest

from vlp.platform.errors import SpecError, VlpUserError
from vlp.benchmarks.pairs_dataset import brace_pattern, ensure_pairs_dataset, shard_paths
from vlp.benchmarks.speedups import KNOWN_VARIANTS, parse_variant
from vlp.benchmarks.training_runs import TrainingSetup, TrainingWorkspace


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return ensure_pairs_dataset(tmp_path_factory.mktemp("cache"), samples=64, image_size=32, shard_size=16)


def test_pairs_dataset_holds_image_caption_and_json_only_and_is_reused(pairs):
    shards = shard_paths(pairs)
    assert [path.name for path in shards] == [f"shard-{i:06d}.tar" for i in range(4)]
    with tarfile.open(shards[0]) as archive:
        names = archive.getnames()
    assert names[:3] == ["00000000.json", "00000000.png", "00000000.txt"] and len(names) == 3 * 16
    assert brace_pattern(pairs).endswith("shard-{000000..000003}.tar")
    stamp = (pairs / "manifest.json").stat().st_mtime_ns
    assert ensure_pairs_dataset(pairs.parent, samples=64, image_size=32, shard_size=16) == pairs
    assert (pairs / "manifest.json").stat().st_mtime_ns == stamp


def test_both_trainers_get_the_same_settings(pairs, tmp_path):
    setup = TrainingSetup(batch_size=16, procs=2, steps=12, skip_steps=2, precision="bf16", workers=0, lr=1e-3)
    workspace = TrainingWorkspace(tmp_path, pairs, setup)
    spec = workspace.vlp_spec(["train.compile=true"])
    assert spec["train"]["batch_size"] == 16 and spec["train"]["max_steps"] == 12 and spec["train"]["precision"] == "bf16"
    assert spec["train"]["compile"] is True and spec["resources"]["procs_per_node"] == 2
    assert spec["train"]["checkpoint_every"] > 12  # no checkpoint inside the measured steps
    args = workspace.open_clip_args(tmp_path / "logs", "name")
    value = {flag: args[i + 1] for i, flag in enumerate(args) if flag.startswith("--") and i + 1 < len(args)}
    assert value["--batch-size"] == "8"  # per process
    assert value["--train-num-samples"] == str(12 * 16) and value["--epochs"] == "1"
    assert value["--precision"] == "amp_bf16" and value["--lr"] == "0.001" and value["--beta2"] == "0.98"
    assert json.loads((workspace.open_clip_model_dir() / "open_clip_config.json").read_text())["model_cfg"]["embed_dim"] == 64
    with pytest.raises(SpecError):
        workspace.vlp_spec(["train.no_such_field=1"])


def test_setup_and_variant_errors_are_one_line():
    with pytest.raises(VlpUserError, match="divisible"):
        TrainingSetup(batch_size=15, procs=2)
    with pytest.raises(VlpUserError, match="use one of bf16"):
        parse_variant("warp-speed")
    assert parse_variant("bf16") is KNOWN_VARIANTS["bf16"]
    custom = parse_variant("lr=train.lr=0.01,train.warmup_steps=2")
    assert custom.name == "lr" and custom.overrides == ("train.lr=0.01", "train.warmup_steps=2")


def test_one_tiny_run_of_each_trainer(pairs, tmp_path):
    setup = TrainingSetup(batch_size=8, procs=1, threads_per_proc=1, steps=4, skip_steps=1, warmup_steps=1, log_every=2)
    workspace = TrainingWorkspace(tmp_path, pairs, setup)
    for measurement in (workspace.run_vlp("tiny", 0), workspace.run_open_clip("tiny", 0)):
        assert measurement.steps == 4, measurement.system
        assert measurement.samples_per_second > 0 and measurement.peak_rss_mb > 50
        assert measurement.startup_seconds > 0 and measurement.threads == 1
        assert len(measurement.as_dict()["step_seconds_rank0"]) == 4
