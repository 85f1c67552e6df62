"""The training sample decoder of video-text models (`model.arch: video`).

A webdataset sample holding a video file (`mp4`, or another of `VIDEO_EXTENSIONS`), a caption (`txt`) and
optionally a `json` becomes (uint8 T×3×H×W frames, caption, targets): T frames picked by the training sampling
(random within each of T segments, seeded by the sample's seed), then the model's image transform with one crop
and one colour jitter for all of them. `targets["label"]` is the clip's class index among `classes` (read from the
json's `label_field`, the motion for shapes clips; a value outside `classes` is bad data), or -1 for a clip without
one or whose json says `labelled: false` (the generator labels only clips captioned by their class prompt), so
OmniVL's unified contrastive loss can treat clips of one class as positives; no targets when `classes` is empty.

A clip that does not decode raises ValueError, which the training loader counts and skips like a bad image.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from vlp.workloads.data.image_transforms import ImageTransform
from vlp.workloads.data.video_codec import FRAME_SAMPLINGS, VIDEO_EXTENSIONS, decode_video

UNLABELLED = -1
_GOLDEN = 0x9E3779B97F4A7C15  # an odd multiplier that scatters consecutive seeds


def frame_seed(seed: int | None) -> int | None:
    """The seed of a sample's frame draw: its own, since the transform's coins come from random.Random(seed) too."""
    return None if seed is None else (seed * _GOLDEN + 1) % 2**64


class VideoTextDecoder:
    """(sample, seed) → (uint8 T×3×H×W, caption, targets); `normalise` turns a stacked B×T×3×H×W batch into floats."""

    def __init__(self, transform: ImageTransform, frames: int = 8, sampling: str = "segment",
                 classes: tuple[str, ...] = (), label_field: str = "motion"):
        if frames < 1:
            raise ValueError(f"frames must be >= 1 (got {frames})")
        if sampling not in FRAME_SAMPLINGS:
            raise ValueError(f"frame sampling must be one of {', '.join(FRAME_SAMPLINGS)} (got {sampling!r})")
        self.transform = transform
        self.frames = frames
        self.sampling = sampling
        self.classes = tuple(classes)
        self.label_field = label_field
        self._index = {name: i for i, name in enumerate(self.classes)}

    def __call__(self, sample: dict[str, Any], seed: int | None = None) -> tuple[torch.Tensor, str, dict]:
        entry = next((ext for ext in VIDEO_EXTENSIONS if ext in sample), None)
        if entry is None:
            raise ValueError(f"no video field (looked for {', '.join(VIDEO_EXTENSIONS)}; found {', '.join(sorted(sample))})")
        name = f"{sample.get('__url__', '?')}:{sample.get('__key__', '?')}.{entry}"
        frames = decode_video(sample[entry], self.frames, self.sampling, frame_seed(seed), name=name, extension=entry)
        caption = sample.get("txt", b"")
        caption = caption.decode("utf-8") if isinstance(caption, bytes) else caption
        return self.transform.transform_uint8(frames, seed), caption, self._targets(sample)

    def normalise(self, videos: torch.Tensor) -> torch.Tensor:
        return self.transform.normalise(videos)

    def _targets(self, sample: dict[str, Any]) -> dict[str, int]:
        if not self.classes:
            return {}
        meta = json.loads(sample["json"]) if "json" in sample else {}
        label = meta.get(self.label_field)
        # Moving-shapes clips carry their motion always; only those marked `labelled` count as labelled clips.
        if label is None or not meta.get("labelled", True):
            return {"label": UNLABELLED}
        if label not in self._index:
            raise ValueError(f"{self.label_field} {label!r} is not one of the classes {', '.join(self.classes)}")
        return {"label": self._index[label]}

