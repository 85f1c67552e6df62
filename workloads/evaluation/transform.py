"""The evaluation image transform (CLIP's): resize the shorter side, centre-crop a square, normalise.

For square images at the model's size (vlp's shapes) it changes nothing but the normalisation, so
evaluation sees exactly what training saw.
"""

from __future__ import annotations

import io

import numpy as np
import torch


class EvalImageTransform:
    def __init__(self, image_size: int, mean, std):
        self.image_size = image_size
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __call__(self, image_bytes: bytes) -> torch.Tensor:
        return self.normalise(self.to_uint8(image_bytes))

    def to_uint8(self, image_bytes: bytes) -> torch.Tensor:
        """3×S×S uint8: the resized, cropped image before normalisation (a quarter of the memory of floats)."""
        from PIL import Image

        image = self._square(Image.open(io.BytesIO(image_bytes)).convert("RGB"), Image.BICUBIC)
        return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (…×3×S×S) → the model's normalised float input."""
        return (pixels.float().div(255) - self.mean) / self.std

    def mask(self, mask_bytes: bytes) -> torch.Tensor:
        """A label mask (greyscale PNG) cut exactly like its image, with nearest-neighbour resizing."""
        from PIL import Image

        mask = self._square(Image.open(io.BytesIO(mask_bytes)).convert("L"), Image.NEAREST)
        return torch.from_numpy(np.asarray(mask, dtype=np.uint8).astype(np.int64))

    def _square(self, image, resample):
        width, height = image.size
        if (width, height) == (self.image_size, self.image_size):
            return image
        scale = self.image_size / min(width, height)
        resized = (max(self.image_size, round(width * scale)), max(self.image_size, round(height * scale)))
        image = image.resize(resized, resample)
        left, top = (resized[0] - self.image_size) // 2, (resized[1] - self.image_size) // 2
        return image.crop((left, top, left + self.image_size, top + self.image_size))

    def unnormalise(self, pixels: torch.Tensor) -> np.ndarray:
        """H×W×3 floats in [0, 1], for drawing."""
        return (pixels * self.std + self.mean).clamp(0, 1).permute(1, 2, 0).numpy()
