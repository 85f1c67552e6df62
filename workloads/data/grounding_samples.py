"""Training samples for visual grounding (arch `transvg`): an image, one referring expression, its target box.

A sample is a shard sample whose `json` carries `refexps` ([{"expression", "box": [x0, y0, x1, y1] pixels of the
stored image, ...}], as the shapes generator writes them). The decoder picks one expression by the sample's seed,
so a resumed run replays the same choice, and maps its box into the model's input with the same geometry the
pixels go through.

Geometry: always open_clip's evaluation transform (resize, then centre crop or pad, per `resize_mode`). No
augmentation: a random crop could cut the referred object away and colour jitter changes what "the red one" means,
so `data.augment` is ignored here (a warning says so). The box follows the transform exactly
(`box_geometry.eval_box_mapping`, checked pixel by pixel against `resize_and_crop`).

Boxes cut by the crop (possible with `resize_mode: shortest` on non-square images; shapes keep their objects in the
centred square, so never there): an expression is eligible only while at least `MIN_VISIBLE` of its box's area
stays in the input, and its target is the visible part (the box clipped to the input). A sample with no eligible
expression, or none at all, raises ValueError: the loader skips and counts it as bad data.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import torch

from vlp.workloads.data.box_geometry import BoxMapping, eval_box_mapping
from vlp.workloads.data.image_transforms import ImageTransform, _interpolation, decode_rgb, resize_and_crop
from vlp.workloads.data.loader import ImageTextDecoder

log = logging.getLogger(__name__)

MIN_VISIBLE = 0.5
"""Share of a box's area that must stay inside the model's input for its expression to be trained on."""


class GroundingDecoder:
    """`decoder(sample, seed) -> (uint8 [3, H, W], expression, {"box": float [4]})`: the box normalised (x0, y0, x1,
    y1) in [0, 1] of the model's input image; `normalise(batch)` turns stacked uint8 images into the model's input."""

    IMAGE_KEYS = ImageTextDecoder.IMAGE_KEYS

    def __init__(self, transform: ImageTransform, spec: Any = None):
        # `spec` is what sample_decoders hands every decoder; grounding needs nothing from it but the transform.
        self.transform = transform
        self.preprocess = transform.preprocess
        self.interpolation = _interpolation(transform.preprocess.interpolation)
        # Training uses the evaluation geometry whatever `transform.augment` says (the spec refuses an explicit one).

    def __call__(self, sample: dict[str, Any], seed: int | None = None) -> tuple[torch.Tensor, str, dict[str, torch.Tensor]]:
        image_bytes = next((sample[key] for key in self.IMAGE_KEYS if key in sample), None)
        if image_bytes is None:
            raise ValueError(f"no image field (looked for {', '.join(self.IMAGE_KEYS)}; found {', '.join(sorted(sample))})")
        refexps = _refexps(sample)
        pixels = decode_rgb(image_bytes)
        height, width = pixels.shape[-2:]
        mapping = eval_box_mapping(height, width, self.preprocess)
        eligible = [(refexp, box) for refexp, box in zip(refexps, target_boxes(refexps, mapping)) if box is not None]
        if not eligible:
            raise ValueError(
                f"none of the {len(refexps)} referring expressions keeps {MIN_VISIBLE:.0%} of its box inside the "
                f"{self.preprocess.resize_mode!r} crop of this {width}x{height} image (resize_mode 'longest' keeps whole images)"
            )
        refexp, box = eligible[(seed or 0) % len(eligible)]
        image = resize_and_crop(pixels, self.preprocess, self.interpolation, self.preprocess.fill_color, self.transform.exact)
        return image, str(refexp["expression"]), {"box": box}

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return self.transform.normalise(images)


def target_boxes(refexps: list[dict], mapping: BoxMapping) -> list[torch.Tensor | None]:
    """Each expression's box in the model's input, normalised and clipped; None where less than MIN_VISIBLE of it
    stays inside."""
    pixel_boxes = torch.tensor([refexp["box"] for refexp in refexps], dtype=torch.float64)
    clipped = mapping.to_input(pixel_boxes)
    area_before = (pixel_boxes[:, 2] - pixel_boxes[:, 0]) * (pixel_boxes[:, 3] - pixel_boxes[:, 1]) * (
        mapping.scale_x * mapping.scale_y / (mapping.input_width * mapping.input_height)
    )
    area_after = (clipped[:, 2] - clipped[:, 0]).clamp(min=0) * (clipped[:, 3] - clipped[:, 1]).clamp(min=0)
    visible = area_after >= MIN_VISIBLE * area_before
    return [box.float() if keep else None for box, keep in zip(clipped, visible.tolist())]


def _refexps(sample: dict[str, Any]) -> list[dict]:
    if "json" not in sample:
        raise ValueError("no json field: a grounding sample's json lists its referring expressions (refexps)")
    meta = sample["json"]
    meta = json.loads(meta) if isinstance(meta, (bytes, str)) else meta
    refexps = meta.get("refexps") if isinstance(meta, dict) else None
    if not refexps:
        raise ValueError("no referring expressions (json field refexps is missing or empty)")
    for refexp in refexps:
        box = refexp.get("box") if isinstance(refexp, dict) else None
        if not isinstance(refexp, dict) or not isinstance(refexp.get("expression"), str) or not isinstance(box, list) or len(box) != 4:
            raise ValueError(f"refexps entry {str(refexp)[:120]} lacks an expression string or a [x0, y0, x1, y1] box")
        if not box[0] < box[2] or not box[1] < box[3]:
            raise ValueError(f"refexps entry {refexp['expression']!r}: box {box} is empty (need x0 < x1 and y0 < y1)")
    return refexps
