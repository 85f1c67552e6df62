"""Moving shapes: clips that do what their class says, captions that name it, deterministic webdataset shards."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

from vlp.workloads.data.shapes import COLOURS, SIZES, ShapesParamsError
from vlp.workloads.data.shapes_render import SHAPES, STYLES
from vlp.workloads.data.shapes_video import (
    MOTIONS,
    STILL,
    VideoShapesParams,
    caption_for,
    generate_shapes_video,
    render_clip,
    render_frames,
)
from vlp.workloads.data.shards import iter_shard, list_shards
from vlp.workloads.data.video_codec import decode_video, probe_video

JSON_FIELDS = {"shape", "colour", "size", "style", "motion", "frames", "fps", "caption_clean", "labelled", "boxes"}
MOTION_WORDS = {
    "moving left": "left", "moving right": "right", "moving up": "up", "moving down": "down",
    "rotating": "rotating|spins", "growing": "grow", "shrinking": "shrink", "bouncing": "bounc", "appearing": "appear",
}


def _centres(boxes):
    return np.array([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2] for b in boxes], dtype=float)


def _areas(boxes):
    return np.array([(b[2] - b[0]) * (b[3] - b[1]) for b in boxes], dtype=float)


@pytest.mark.parametrize("motion", MOTIONS)
def test_each_motion_moves_the_shape_as_its_name_says(motion):
    params = VideoShapesParams(samples=40, seed=5, motions=(motion,), frames=12)
    for index in range(40):
        meta = render_clip(params, index)["json"]
        assert meta["motion"] == motion
        boxes = meta["boxes"]
        assert len(boxes) == 12
        seen = [box for box in boxes if box is not None]
        assert all(0 <= b[0] < b[2] <= 32 and 0 <= b[1] < b[3] <= 32 for b in seen)  # always fully inside
        if motion == "appearing":
            first = next(t for t, box in enumerate(boxes) if box is not None)
            assert 1 <= first <= 6 and all(box is not None for box in boxes[first:])
            assert len({tuple(box) for box in seen}) == 1
            continue
        assert None not in boxes
        centres, areas = _centres(boxes), _areas(boxes)
        axis_moves = {"moving left": (0, -1), "moving right": (0, 1), "moving up": (1, -1), "moving down": (1, 1)}
        if motion in axis_moves:
            axis, sign = axis_moves[motion]
            steps = sign * np.diff(centres[:, axis])
            assert (steps >= 0).all() and steps.sum() >= 4, (index, centres[:, axis])
            assert np.ptp(centres[:, 1 - axis]) <= 1  # sub-pixel positions move a tight pixel box by a pixel at most
        elif motion == "bouncing":
            distance = np.abs(centres - centres[0]).max(axis=1)
            assert distance.max() >= 4 and distance[-1] <= distance.max() / 3, (index, distance)
        elif motion in ("growing", "shrinking"):
            sign = 1 if motion == "growing" else -1
            # The extent changes steadily; a tight pixel box may lose a row to sub-pixel coverage on the way.
            assert (sign * np.diff(areas) >= -0.1 * areas.max()).all(), (index, areas)
            assert sign * (areas[-1] - areas[0]) >= areas.max() / 2, (index, areas)
        elif motion == "rotating":
            assert meta["shape"] not in ("circle", "ring")
            # It turns about a fixed point (for a crescent the full disc's centre): its box wobbles, it does not travel.
            sides = np.array([[b[2] - b[0], b[3] - b[1]] for b in boxes])
            assert np.abs(centres - centres.mean(axis=0)).max() <= 0.25 * sides.max() + 1, (index, centres)
            assert np.ptp(sides, axis=0).max() >= 1, (index, sides)


def test_only_the_shape_changes_between_frames():
    params = VideoShapesParams(samples=36, seed=2)
    for index in range(36):
        _, frames, boxes = render_frames(params, index)
        still = np.ones(frames.shape[1:3], bool)
        for box in filter(None, boxes):
            # The photo style's shadow falls a pixel below and right; the cartoon outline reaches a pixel out.
            still[max(box[1] - 2, 0) : box[3] + 3, max(box[0] - 2, 0) : box[2] + 3] = False
        assert still.any()
        assert (frames[:, still] == frames[0, still]).all(), index
        assert (frames != frames[0]).any(), index  # something moved


def test_clip_fields_and_captions():
    params = VideoShapesParams(samples=200, seed=9, partial_caption_rate=0.5)
    partial = 0
    for index in range(200):
        sample = render_clip(params, index)
        assert set(sample) == {"__key__", "mp4", "txt", "json"} and sample["__key__"] == f"{index:08d}"
        meta = sample["json"]
        assert set(meta) == JSON_FIELDS
        assert (meta["frames"], meta["fps"]) == (16, 8)
        assert meta["shape"] in SHAPES and meta["colour"] in COLOURS and meta["size"] in SIZES and meta["style"] in STYLES
        caption = sample["txt"]
        assert caption == meta["caption_clean"] == caption_for(params, index)
        assert meta["shape"] in caption and re.search(MOTION_WORDS[meta["motion"]], caption), caption
        partial += meta["colour"] not in caption or meta["size"] not in caption
    assert 60 < partial < 140
    info = probe_video(render_clip(params, 0)["mp4"])
    assert (info.codec, info.pix_fmt, info.frames, info.width, info.height, info.fps) == ("h264", "yuv420p", 16, 32, 32, 8.0)


def test_motion_caption_rate_zero_leaves_the_motion_out_of_every_caption():
    params = VideoShapesParams(samples=60, seed=1, motion_caption_rate=0.0, partial_caption_rate=0.0)
    for index in range(60):
        sample = render_clip(params, index)
        meta = sample["json"]
        assert not re.search(MOTION_WORDS[meta["motion"]], sample["txt"]), sample["txt"]
        assert f"{meta['size']} {meta['colour']} {meta['shape']}" in sample["txt"]
    # The rates change captions only: the pictures stay.
    assert render_clip(params, 7)["mp4"] == render_clip(VideoShapesParams(samples=60, seed=1), 7)["mp4"]


def test_still_and_labelled_clips_and_the_others_unchanged():
    plain = VideoShapesParams(samples=80, seed=6, frames=6)
    mixed = VideoShapesParams(samples=80, seed=6, frames=6, still_fraction=0.3, labelled_fraction=0.3)
    kinds = {"still": 0, "labelled": 0, "plain": 0}
    for index in range(80):
        clip = render_clip(mixed, index)
        meta, caption = clip["json"], clip["txt"]
        if meta["motion"] == STILL:
            kinds["still"] += 1
            _, frames, boxes = render_frames(mixed, index)
            assert (frames == frames[0]).all() and len({tuple(box) for box in boxes}) == 1
            assert not meta["labelled"] and meta["shape"] in caption
            assert not any(re.search(word, caption) for word in MOTION_WORDS.values()), caption
        elif meta["labelled"]:
            kinds["labelled"] += 1
            assert caption == f"a video of something {meta['motion']}"
        else:
            kinds["plain"] += 1
            assert clip == render_clip(plain, index)  # the fractions changed nothing else
    assert all(10 <= count for count in kinds.values()), kinds
    assert not any(render_clip(plain, index)["json"]["labelled"] for index in range(20))
    with pytest.raises(ShapesParamsError, match="still_fraction \\+ labelled_fraction must be at most 1"):
        VideoShapesParams(samples=1, seed=0, still_fraction=0.6, labelled_fraction=0.5)


def test_the_decoded_clip_is_the_rendered_one():
    params = VideoShapesParams(samples=4, seed=4, frames=8)
    _, frames, _ = render_frames(params, 3)
    decoded = decode_video(render_clip(params, 3)["mp4"]).permute(0, 2, 3, 1).numpy()
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 6


@pytest.mark.parametrize(
    "fields, problem",
    [
        ({"image_size": 33}, "image_size must be even"),
        ({"frames": 1}, "frames must be in"),
        ({"motions": ("moving sideways",)}, "motions must be distinct ones of"),
        ({"motions": ()}, "motions must be"),
        ({"motion_caption_rate": 1.5}, "motion_caption_rate must be in"),
        ({"styles": ("oil",)}, "styles must be"),
    ],
)
def test_bad_params_are_refused_by_name(fields, problem):
    with pytest.raises(ShapesParamsError, match=problem):
        VideoShapesParams(samples=10, seed=0, **fields)


def _files(root: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(root.iterdir())}


def test_generation_is_byte_identical_in_one_process_or_several_and_readable_by_webdataset(tmp_path):
    import webdataset

    params = VideoShapesParams(samples=30, seed=11, shard_size=12, frames=6)
    one = generate_shapes_video(params, str(tmp_path / "one"), processes=1)
    two = generate_shapes_video(params, str(tmp_path / "two"), processes=2)
    first, second = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert set(first) == {"shard-000000.tar", "shard-000001.tar", "shard-000002.tar", "manifest.json"}
    assert all(first[name] == second[name] for name in first if name != "manifest.json")
    for manifest in (one, two):
        assert manifest["shard_sizes"] == [12, 12, 6] and manifest["samples"] == 30
        assert manifest["motions"] == list(MOTIONS) and manifest["shapes"] == list(SHAPES)
        assert manifest["classes"] == {"motion": list(MOTIONS), "shape": list(SHAPES), "colour": list(COLOURS), "size": list(SIZES)}
        assert manifest["video"] == {"entry": "mp4", "container": "mp4", "codec": "h264", "pix_fmt": "yuv420p", "crf": params.crf}
        assert (manifest["frames"], manifest["fps"], manifest["image_size"]) == (6, 8, 32)
    assert json.loads(first["manifest.json"])["format"] == "vlp-shapes-video/1"

    # webdataset's own reader and vlp's see the same samples.
    shards = list_shards(str(tmp_path / "one"))
    ours = [sample for shard in shards for sample in iter_shard(shard)]
    theirs = list(webdataset.WebDataset(shards, shardshuffle=False, empty_check=False))
    assert [s["__key__"] for s in ours] == [s["__key__"] for s in theirs] == [f"{i:08d}" for i in range(30)]
    for mine, other in zip(ours, theirs):
        assert mine["mp4"] == other["mp4"] and mine["txt"] == other["txt"]
        assert json.loads(mine["json"]) == render_clip(params, int(mine["__key__"]))["json"]
    assert decode_video(ours[0]["mp4"]).shape == (6, 3, 32, 32)
    with tarfile.open(tmp_path / "one" / "shard-000000.tar") as archive:
        assert archive.getnames()[:3] == ["00000000.json", "00000000.mp4", "00000000.txt"]
