"""prepare-data for image shapes: the held-out split's scenes (one shape unless `eval_max_objects` asks for more)."""

from __future__ import annotations

from vlp.pipelines.steps.prepare_data import EVAL_SEED_OFFSET, _image_params
from vlp.platform.spec.data import DataSection


def test_held_out_scenes_hold_one_shape_unless_grounding_asks_for_several():
    data = DataSection.model_validate({"shapes": {"train_samples": 40, "eval_samples": 20, "max_objects": 3, "seed": 2}})
    train, held_out = _image_params(data.shapes)
    assert (train.max_objects, held_out.max_objects, held_out.seed) == (3, 1, 2 + EVAL_SEED_OFFSET)
    data = DataSection.model_validate({"shapes": {"max_objects": 3, "eval_max_objects": 3}})
    train, held_out = _image_params(data.shapes)
    assert (train.max_objects, held_out.min_objects, held_out.max_objects) == (3, 1, 3)
    assert (held_out.partial_caption_rate, held_out.caption_noise_rate) == (0.0, 0.0)
