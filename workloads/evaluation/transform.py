"""The evaluation image transform: the model's open_clip eval preprocessing (resize mode, interpolation, centre crop
or pad, normalisation; see `vlp.workloads.data.image_transforms`), plus label masks cut exactly like their images."""

from __future__ import annotations

import io

import numpy as np
import torch

from vlp.workloads.data.image_transforms import MASK_PADDING, ImagePreprocess, ImageTransform, resize_and_crop


class EvalImageTransform(ImageTransform):
    def __init__(self, preprocess: ImagePreprocess):
        super().__init__(preprocess, augment=None)
        self.mean = torch.tensor(preprocess.mean).view(3, 1, 1)
        self.std = torch.tensor(preprocess.std).view(3, 1, 1)

    def to_uint8(self, image_bytes: bytes, seed: int | None = None) -> torch.Tensor:
        """3×H×W uint8: the resized, cropped image before normalisation (a quarter of the memory of floats)."""
        return super().to_uint8(image_bytes)

    def mask(self, mask_bytes: bytes) -> torch.Tensor:
        """A label mask (greyscale PNG) → H×W int64, resized (nearest, as PIL's) and cropped exactly like its image;
        where the `longest` mode pads the image, the mask holds MASK_PADDING (no object), which scoring ignores."""
        from PIL import Image
        from torchvision.transforms import InterpolationMode

        image = Image.open(io.BytesIO(mask_bytes))
        # A palette mask's values are its indices (as VOC's); anything else is read as grey levels.
        labels = np.array(image if image.mode in ("L", "P") else image.convert("L"), dtype=np.uint8)
        cut = resize_and_crop(torch.from_numpy(labels)[None], self.preprocess, InterpolationMode.NEAREST_EXACT, MASK_PADDING)
        return cut[0].long()

    def unnormalise(self, pixels: torch.Tensor) -> np.ndarray:
        """H×W×3 floats in [0, 1], for drawing."""
        return (pixels * self.std + self.mean).clamp(0, 1).permute(1, 2, 0).numpy()
