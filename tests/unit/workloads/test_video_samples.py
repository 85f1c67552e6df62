"""The video sample decoder: sampled frames with one crop for all, motion labels, and bad clips the loader skips."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import torch

from vlp.platform.spec.data import AugmentSection
from vlp.workloads.data.image_transforms import ImagePreprocess, ImageTransform
from vlp.workloads.data.loader import make_train_loader
from vlp.workloads.data.shapes_video import MOTIONS, VideoShapesParams, generate_shapes_video, render_clip
from vlp.workloads.data.shards import iter_shard
from vlp.workloads.data.video_codec import decode_video, frame_indices
from vlp.workloads.data.video_samples import UNLABELLED, VideoTextDecoder, frame_seed
from video_files import audio_only_mp4

PREPROCESS = ImagePreprocess(size=(24, 24), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
FRAMES = 4


def _sample(params: VideoShapesParams, index: int) -> dict:
    """A clip as the shard reader hands it over: bytes per entry."""
    clip = render_clip(params, index)
    return {
        "__key__": clip["__key__"], "__url__": "mem.tar", "mp4": clip["mp4"],
        "txt": clip["txt"].encode(), "json": json.dumps(clip["json"]).encode(),
    }


def test_frames_are_sampled_then_cropped_alike_and_labelled_with_the_motion():
    params = VideoShapesParams(samples=8, seed=3, frames=12, labelled_fraction=1.0)
    transform = ImageTransform(PREPROCESS, AugmentSection(scale=(0.4, 0.6)), exact=False)
    decoder = VideoTextDecoder(transform, FRAMES, "segment", classes=MOTIONS)
    sample = _sample(params, 5)
    pixels, caption, targets = decoder(sample, seed=1234)
    assert pixels.shape == (FRAMES, 3, 24, 24) and pixels.dtype == torch.uint8
    assert caption == render_clip(params, 5)["txt"] == f"a video of something {json.loads(sample['json'])['motion']}"
    assert targets == {"label": MOTIONS.index(json.loads(sample["json"])["motion"])}
    assert decoder(sample, seed=1234)[0].equal(pixels)  # replayable from the seed
    assert not decoder(sample, seed=99)[0].equal(pixels)
    # Every frame got the crop that this seed gives one frame: the augmentation is consistent across time.
    everything = decode_video(sample["mp4"])
    picks = frame_indices(12, FRAMES, "segment", frame_seed(1234))
    assert all(i * 3 <= pick < (i + 1) * 3 for i, pick in enumerate(picks))
    for frame, picked in zip(pixels, everything[picks]):
        assert frame.equal(transform.transform_uint8(picked, seed=1234))


def test_evaluation_sampling_is_uniform_and_needs_no_seed():
    params = VideoShapesParams(samples=4, seed=3, frames=16)
    sample = _sample(params, 1)
    decoder = VideoTextDecoder(ImageTransform(ImagePreprocess((32, 32), (0.5,) * 3, (0.5,) * 3), None), 8, "uniform")
    pixels, _, targets = decoder(sample)
    assert targets == {}
    assert pixels.equal(decode_video(sample["mp4"])[frame_indices(16, 8, "uniform")])
    assert decoder.normalise(torch.stack([pixels, pixels])).shape == (2, 8, 3, 32, 32)


def test_labels_unlabelled_and_unknown_classes():
    params = VideoShapesParams(samples=4, seed=3, frames=4, motions=("growing",), labelled_fraction=1.0)
    decoder = VideoTextDecoder(ImageTransform(PREPROCESS, None, exact=False), 2, "uniform", classes=("shrinking", "growing"))
    sample = _sample(params, 0)
    assert decoder(sample)[2] == {"label": 1}
    assert decoder({k: v for k, v in sample.items() if k != "json"})[2] == {"label": UNLABELLED}
    # A clip captioned as a plain pair carries its motion for evaluation but is no labelled clip.
    plain = _sample(VideoShapesParams(samples=4, seed=3, frames=4, motions=("growing",)), 0)
    assert json.loads(plain["json"])["motion"] == "growing" and decoder(plain)[2] == {"label": UNLABELLED}
    other = VideoTextDecoder(ImageTransform(PREPROCESS, None, exact=False), 2, "uniform", classes=("rotating",))
    with pytest.raises(ValueError, match="motion 'growing' is not one of the classes rotating"):
        other(sample)
    with pytest.raises(ValueError, match="no video field"):
        decoder({"__key__": "x", "txt": b"a clip"})


def tokens(captions: list[str]) -> torch.Tensor:
    return torch.tensor([[len(caption), sum(map(ord, caption))] for caption in captions])


def test_a_clip_that_does_not_decode_is_skipped_and_counted_by_the_loader(tmp_path: Path, caplog):
    params = VideoShapesParams(samples=12, seed=7, frames=6, shard_size=12, labelled_fraction=0.5)
    generate_shapes_video(params, str(tmp_path), processes=1)
    shard = tmp_path / "shard-000000.tar"
    samples = list(iter_shard(str(shard)))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for sample in samples:
            for entry in ("json", "mp4", "txt"):
                content = sample[entry]
                if entry == "mp4" and sample["__key__"] == "00000004":
                    content = content[: len(content) // 3]  # a cut-short download
                if entry == "mp4" and sample["__key__"] == "00000009":
                    content = audio_only_mp4()
                member = tarfile.TarInfo(f"{sample['__key__']}.{entry}")
                member.size = len(content)
                archive.addfile(member, io.BytesIO(content))
    shard.write_bytes(buffer.getvalue())

    decoder = VideoTextDecoder(ImageTransform(PREPROCESS, AugmentSection(), exact=False), FRAMES, "segment", classes=MOTIONS)
    loader = make_train_loader([str(shard)], decoder, tokens, 4, rank=0, world_size=1, seed=0, workers=0, max_bad_samples=5)
    with caplog.at_level("WARNING", logger="vlp.workloads.data.loader"):
        iterator = iter(loader)
        for _ in range(3):  # 10 good clips an epoch: the third batch finishes epoch 0 and starts epoch 1
            videos, texts, targets = next(iterator)
            assert videos.shape == (4, FRAMES, 3, 24, 24) and videos.dtype == torch.float32
            assert texts.shape == (4, 2) and targets["label"].shape == (4,)
            assert ((UNLABELLED <= targets["label"]) & (targets["label"] < len(MOTIONS))).all()
    skips = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped bad data")]
    assert loader.skipped == len(skips) >= 2  # each bad clip once in epoch 0, perhaps again early in epoch 1
    cut = [skip for skip in skips if "sample '00000004'" in skip]
    silent = [skip for skip in skips if "sample '00000009'" in skip]
    assert cut and silent and len(cut) + len(silent) == len(skips)
    assert "00000004.mp4: not a video file FFmpeg reads" in cut[0]
    assert "00000009.mp4: no video stream (streams: audio)" in silent[0]

