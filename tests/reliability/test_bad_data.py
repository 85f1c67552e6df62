"""Bad data: undecodable samples and truncated shards are skipped and counted below `data.max_bad_samples`,
and stop the run with an error naming the shard above it. Also: the data position is exactly resumable."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
import torch
import yaml
from jobs import VLP

from vlp.platform.spec.data import AugmentSection
from vlp.workloads.data.image_transforms import ImagePreprocess, ImageTransform
from vlp.workloads.data.loader import BadDataError, ImageTextDecoder, make_train_loader
from vlp.workloads.data.shapes import ShapesParams, generate_shapes

SAMPLES, SHARD_SIZE, BATCH = 64, 16, 8
BAD_SAMPLES_IN_SHARD_1 = 3


def tokens(captions: list[str]) -> torch.Tensor:
    return torch.tensor([[len(caption), sum(map(ord, caption))] for caption in captions])


def decoder() -> ImageTextDecoder:
    preprocess = ImagePreprocess(size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    return ImageTextDecoder(ImageTransform(preprocess, AugmentSection()))


@pytest.fixture(scope="module")
def clean_shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clean")
    generate_shapes(ShapesParams(samples=SAMPLES, seed=3, shard_size=SHARD_SIZE, image_size=32), str(root), processes=1)
    return root


@pytest.fixture(scope="module")
def bad_shards(tmp_path_factory, clean_shards) -> Path:
    """The clean dataset with 3 undecodable images in shard 1 and shard 2 cut in half."""
    root = tmp_path_factory.mktemp("bad")
    for path in clean_shards.iterdir():
        (root / path.name).write_bytes(path.read_bytes())
    shard = root / "shard-000001.tar"
    with tarfile.open(shard) as archive:
        members = [(member, archive.extractfile(member).read()) for member in archive.getmembers()]
    pngs = [member.name for member, _ in members if member.name.endswith(".png") and ".mask." not in member.name][:BAD_SAMPLES_IN_SHARD_1]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for member, content in members:
            if member.name in pngs:
                content = b"\x89PNG\r\n\x1a\n" + b"not an image" * 20
                member.size = len(content)
            archive.addfile(member, io.BytesIO(content))
    shard.write_bytes(buffer.getvalue())
    truncated = root / "shard-000002.tar"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    return root


def shards(root: Path) -> list[str]:
    return sorted(str(path) for path in root.glob("*.tar"))


def batches(loader, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    iterator = iter(loader)
    return [next(iterator) for _ in range(count)]


def test_bad_samples_and_a_truncated_shard_are_skipped_and_counted(bad_shards, caplog):
    loader = make_train_loader(shards(bad_shards), decoder(), tokens, BATCH, rank=0, world_size=1, seed=0, workers=0, max_bad_samples=20)
    # Read until epoch 2 has begun: epochs 0 and 1 each met the 3 bad images and the truncated shard once.
    with caplog.at_level("WARNING", logger="vlp.workloads.data.loader"):
        for images, _, _ in loader:
            assert images.shape == (BATCH, 3, 32, 32) and torch.isfinite(images).all()
            if loader.positions[0].epoch == 2:
                break
    skips = [record.getMessage() for record in caplog.records if record.getMessage().startswith("skipped bad data")]
    assert loader.skipped == len(skips)
    assert sum("shard-000001.tar (sample" in skip for skip in skips) >= 2 * BAD_SAMPLES_IN_SHARD_1
    assert sum("shard-000002.tar (truncated or corrupt shard" in skip for skip in skips) >= 2
    assert all("shard-000001.tar" in skip or "shard-000002.tar" in skip for skip in skips)


def test_past_the_limit_the_stream_stops_naming_the_shard(bad_shards):
    loader = make_train_loader(shards(bad_shards), decoder(), tokens, BATCH, rank=0, world_size=1, seed=0, workers=2, max_bad_samples=2)
    with pytest.raises(BadDataError) as raised:
        batches(loader, 20)
    message = str(raised.value)
    assert "more than data.max_bad_samples=2" in message and "shard-00000" in message and ".tar" in message


def test_a_clean_dataset_skips_nothing(clean_shards):
    loader = make_train_loader(shards(clean_shards), decoder(), tokens, BATCH, rank=0, world_size=1, seed=0, workers=0, max_bad_samples=0)
    batches(loader, 10)
    assert loader.skipped == 0


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_stream_yields_exactly_the_batches_of_an_uninterrupted_one(bad_shards, workers):
    def loader_for(rank):
        return make_train_loader(shards(bad_shards), decoder(), tokens, BATCH, rank=rank, world_size=2, seed=5, workers=workers, max_bad_samples=50)

    for rank in (0, 1):
        uninterrupted = batches(loader_for(rank), 13)  # crosses epoch boundaries (each consumer has 1-2 shards)
        first = loader_for(rank)
        batches(first, 7)
        positions = first.state_dict()
        resumed = loader_for(rank)
        # A checkpoint holds every consumer of the run; each rank picks its own.
        resumed.load_state_dict({**positions, **_other_rank_positions(rank, workers)}, batches_done=7)
        for (images, texts, _), (expected_images, expected_texts, _) in zip(batches(resumed, 6), uninterrupted[7:]):
            assert torch.equal(images, expected_images) and torch.equal(texts, expected_texts)


def _other_rank_positions(rank: int, workers: int) -> dict[int, tuple]:
    per_rank = max(1, workers)
    other = 1 - rank
    return {consumer: (consumer, 0, 0, 0) for consumer in range(other * per_rank, (other + 1) * per_rank)}


def test_a_run_over_the_limit_fails_with_the_shard_named_and_the_count_logged(tmp_path, bad_shards):
    """`vlp run` end to end: epoch 1 meets 4 bad items (logged as data/skipped_samples), epoch 2 crosses the limit."""
    import os

    from mlflow.tracking import MlflowClient

    experiment = {
        "name": "bad-data", "seed": 0,
        "data": {"source": "shards", "train": str(bad_shards), "max_bad_samples": 5},
        "model": {"preset": "shapes-vit-micro"},
        "train": {"batch_size": BATCH, "max_steps": 40, "warmup_steps": 1, "checkpoint_every": 100, "log_every": 1},
        "resources": {"nodes": 1, "procs_per_node": 1},
        "register": {"enabled": False},
    }
    path = tmp_path / "bad-data.yaml"
    path.write_text(yaml.safe_dump(experiment))
    home = tmp_path / "home"
    env = {**os.environ, "VLP_HOME": str(home), "PYTHONSAFEPATH": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run([VLP, "run", str(path), "--json"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr[-3000:]
    outcome = json.loads(result.stdout)
    assert outcome["status"] == "FAILED"
    assert "data.max_bad_samples=5" in outcome["error"] and "shard-00000" in outcome["error"], outcome["error"]
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    run = client.get_run(outcome["run_id"])
    assert run.info.status == "FAILED"
    skipped = [metric.value for metric in client.get_metric_history(outcome["run_id"], "data/skipped_samples")]
    assert skipped and BAD_SAMPLES_IN_SHARD_1 + 1 <= max(skipped) <= 5  # counted below the limit, then stopped past it
