"""prepare-data with `data.shapes.video`: clips instead of images, from the spec, cached by their parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from vlp.pipelines.steps.prepare_data import EVAL_SEED_OFFSET, _video_params, ensure_shapes
from vlp.platform.spec.data import MOTIONS, DataSection
from vlp.workloads.data import shapes_video


def test_the_spec_motions_are_the_generators():
    assert MOTIONS == shapes_video.MOTIONS


def test_video_params_follow_the_spec_and_hold_out_clean_captions():
    data = DataSection.model_validate({"shapes": {
        "train_samples": 40, "eval_samples": 20, "image_size": 24, "seed": 3, "partial_caption_rate": 0.3,
        "styles": ["cartoon"], "video": {"frames": 6, "fps": 4, "motions": ["rotating", "appearing"], "motion_caption_rate": 0.5,
                                         "still_fraction": 0.2, "labelled_fraction": 0.1},
    }})
    train, held_out = _video_params(data.shapes)
    assert (train.samples, train.seed, train.image_size, train.frames, train.fps) == (40, 3, 24, 6, 4)
    assert train.motions == held_out.motions == ("rotating", "appearing") and train.styles == ("cartoon",)
    assert (train.partial_caption_rate, train.motion_caption_rate, train.still_fraction, train.labelled_fraction) == (0.3, 0.5, 0.2, 0.1)
    assert (held_out.still_fraction, held_out.labelled_fraction) == (0.0, 0.0)
    assert (held_out.samples, held_out.seed, held_out.partial_caption_rate, held_out.motion_caption_rate) == (20, 3 + EVAL_SEED_OFFSET, 0.0, 1.0)
    assert train.shard_size == 500  # the images' 2,000 a shard capped for clips


def test_clips_are_generated_once_and_then_reused(tmp_path: Path):
    params = shapes_video.VideoShapesParams(samples=6, seed=1, frames=3, shard_size=4)
    uri, stats = ensure_shapes(str(tmp_path), params)
    assert stats["generated"] and stats["samples_per_second"] > 0
    assert Path(uri).name.startswith("shapes-video-") and Path(uri).parent == tmp_path / "datasets"
    assert json.loads((Path(uri) / "manifest.json").read_text())["format"] == "vlp-shapes-video/1"
    again, stats = ensure_shapes(str(tmp_path), params)
    assert (again, stats) == (uri, {"generated": False})
    other, _ = ensure_shapes(str(tmp_path), shapes_video.VideoShapesParams(samples=6, seed=2, frames=3, shard_size=4))
    assert other != uri


@pytest.mark.parametrize(
    "data, problem",
    [
        ({"shapes": {"image_size": 33, "video": {}}}, "data.shapes.image_size must be even for video clips"),
        ({"shapes": {"max_aspect_ratio": 1.5, "video": {}}}, "video clips are square"),
        ({"video": {"frames": 8}}, "Extra inputs are not permitted"),  # the model's model.video.frames says how many
        ({"shapes": {"video": {"motions": ["rotating", "rotating"]}}}, "need distinct motions"),
        ({"shapes": {"video": {"motions": ["spinning"]}}}, "moving left"),
        ({"shapes": {"video": {"frames": 1}}}, "greater than or equal to 2"),
        ({"shapes": {"video": {"still_fraction": 0.7, "labelled_fraction": 0.4}}}, r"still_fraction \+ labelled_fraction must be at most 1"),
        ({"video": {"train_sampling": "random"}}, "'uniform' or 'segment'"),
    ],
)
def test_bad_video_data_settings_are_refused_by_name(data, problem):
    with pytest.raises(ValidationError, match=problem):
        DataSection.model_validate(data)


def test_odd_image_sizes_stay_fine_for_images():
    assert DataSection.model_validate({"shapes": {"image_size": 33}}).shapes.video is None
