"""Where a box of the stored image lands in the model's input, and back, under open_clip's eval geometry.

`resize_and_crop` (image_transforms.py) resizes, then centre-crops or pads. Both are affine per axis on continuous
pixel-edge coordinates (pixel i covers [i, i + 1); a resize by s maps edge x to x * s, as PIL's and torch's
resamplers place pixel centres), so a box maps exactly:  x_input = x_image * scale_x + shift_x.  The sizes and
offsets below are computed as `resize_and_crop`, torchvision's `center_crop` and open_clip's `center_crop_or_pad`
compute them; tests/unit/evaluation/test_grounding.py checks them pixel by pixel against those transforms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlp.workloads.data.image_transforms import ImagePreprocess


@dataclass(frozen=True)
class BoxMapping:
    """Stored-image pixels -> model-input pixels, per axis: input = image * scale + shift."""

    scale_x: float
    scale_y: float
    shift_x: float
    shift_y: float
    input_width: int
    input_height: int

    def to_input(self, boxes: torch.Tensor) -> torch.Tensor:
        """[N, 4] pixel (x0, y0, x1, y1) of the stored image -> the same boxes normalised to [0, 1] of the input
        (a box reaching past a crop is clipped to the input)."""
        scale = boxes.new_tensor([self.scale_x, self.scale_y] * 2)
        shift = boxes.new_tensor([self.shift_x, self.shift_y] * 2)
        size = boxes.new_tensor([self.input_width, self.input_height] * 2)
        return ((boxes * scale + shift) / size).clamp(0.0, 1.0)

    def to_image(self, boxes: torch.Tensor) -> torch.Tensor:
        """[N, 4] normalised (x0, y0, x1, y1) of the input -> pixel boxes of the stored image."""
        scale = boxes.new_tensor([self.scale_x, self.scale_y] * 2)
        shift = boxes.new_tensor([self.shift_x, self.shift_y] * 2)
        size = boxes.new_tensor([self.input_width, self.input_height] * 2)
        return (boxes * size - shift) / scale


def eval_box_mapping(height: int, width: int, preprocess: ImagePreprocess) -> BoxMapping:
    """The mapping of `resize_and_crop(image of height x width, preprocess)`: open_clip's eval transform, which is
    also vlp's training transform when augmentation is off."""
    target_h, target_w = preprocess.size
    if preprocess.resize_mode == "squash":
        resized = (target_h, target_w)
    elif preprocess.resize_mode == "longest":
        ratio = max(height / target_h, width / target_w)
        resized = (round(height / ratio), round(width / ratio))
    elif target_h == target_w:
        short, long = sorted((height, width))
        new_long = int(target_h * long / short)
        resized = (target_h, new_long) if height <= width else (new_long, target_h)
    else:
        ratio = min(height / target_h, width / target_w)
        resized = (round(height / ratio), round(width / ratio))
    return BoxMapping(
        scale_x=resized[1] / width, scale_y=resized[0] / height,
        shift_x=_crop_or_pad_shift(resized[1], target_w), shift_y=_crop_or_pad_shift(resized[0], target_h),
        input_width=target_w, input_height=target_h,
    )


def _crop_or_pad_shift(size: int, target: int) -> int:
    """Where the resized axis starts in the output of torchvision's `center_crop` (pads by floor half first when the
    axis is short, then crops at round((size - target) / 2))."""
    if target > size:
        return (target - size) // 2
    return -int(round((size - target) / 2.0))
