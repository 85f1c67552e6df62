"""Toy clips and toy clip encoders whose right answers are known by construction.

Each clip is a coloured shape (a square or a bar) on black, 16×16 px, 6 frames, moving left, right, up or down,
growing or shrinking. Every clip has a mirror: the clip of the opposite motion is the same frames in reverse order.
`MotionClip` reads the motion from how the shape's centre and area change over the frames; `FrameClip` is an image
model that sees one frame at a time (so the suite mean-pools its frames). Texts embed as the words they contain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from vlp.workloads.data.image_transforms import ImagePreprocess
from vlp.workloads.models.factory import BuiltModel

SIZE = 16
FRAMES = 6
MOTIONS = ("moving left", "moving right", "moving up", "moving down", "growing", "shrinking")
COLOURS = ("red", "green", "blue")
SHAPES = ("square", "bar")
WORDS = ("left", "right", "up", "down", "growing", "shrinking", *COLOURS, *SHAPES)


@dataclass(frozen=True)
class ToyClip:
    """What the suite reads of a `VideoRecord`, with the frames already decoded."""

    key: str
    frames: torch.Tensor
    """uint8 T×3×H×W."""
    caption: str
    motion: str
    shape: str
    meta: dict = field(default_factory=dict)
    label: str | None = None

    @property
    def all_captions(self) -> tuple[str, ...]:
        return (self.caption,)


def render(motion: str, colour: str, shape: str, offset: int = 0) -> torch.Tensor:
    frames = np.zeros((FRAMES, SIZE, SIZE, 3), np.uint8)
    for t in range(FRAMES):
        step = t if motion in ("moving right", "moving down", "growing") else FRAMES - 1 - t
        centre_x, centre_y, half = 8, 8 + offset, 2
        if motion in ("moving left", "moving right"):
            centre_x = 3 + 2 * step
        elif motion in ("moving up", "moving down"):
            centre_y = 3 + 2 * step
        else:
            half = 2 + step // 2
        half_height = half if shape == "square" else half // 2
        frames[t, max(0, centre_y - half_height) : centre_y + half_height + 1, max(0, centre_x - half) : centre_x + half + 1, COLOURS.index(colour)] = 255
    return torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()


def toy_clips(repeats: int = 1) -> list[ToyClip]:
    clips = []
    for repeat in range(repeats):
        for motion in MOTIONS:
            for colour in COLOURS:
                for shape in SHAPES:
                    frames = render(motion, colour, shape, offset=repeat % 2)
                    clips.append(ToyClip(f"{len(clips):05d}", frames, f"a {colour} {shape} {motion}", motion, shape, {"colour": colour}))
    return clips


@dataclass(frozen=True)
class ToySource:
    clips: list[ToyClip]
    name: str = "toy-video"
    motions: tuple[str, ...] = ()
    shapes: tuple[str, ...] = ()
    classnames: tuple[str, ...] = ()

    def read(self):
        return iter(self.clips)


def frames_of(record: ToyClip) -> torch.Tensor:
    return record.frames


def _appearance(frames: torch.Tensor) -> torch.Tensor:
    """Per frame: one-hot colour and shape (a bar is wider than tall)."""
    lit = frames.amax(dim=1) > 0.5  # T×H×W
    colour = frames.amax(dim=(2, 3))  # T×3
    widths = lit.any(dim=1).sum(dim=-1).float()
    heights = lit.any(dim=2).sum(dim=-1).float()
    bar = (widths > heights).float()
    return torch.cat([colour, torch.stack([1 - bar, bar], dim=-1)], dim=-1)


class WordText(torch.nn.Module):
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([[1.0 if word in text.replace(".", "").split() else 0.0 for word in WORDS] for text in texts])


class MotionClip(WordText):
    """Sees the true motion: the shape's centre and area at the first and last frame."""

    def encode_video(self, videos: torch.Tensor) -> torch.Tensor:
        lit = videos.amax(dim=2) > 0.5  # B×T×H×W
        ys, xs = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
        area = lit.sum(dim=(2, 3)).float()
        centre_x = (lit * xs).sum(dim=(2, 3)) / area
        centre_y = (lit * ys).sum(dim=(2, 3)) / area
        dx, dy, grow = centre_x[:, -1] - centre_x[:, 0], centre_y[:, -1] - centre_y[:, 0], area[:, -1] - area[:, 0]
        moved = (dx.abs() + dy.abs()) > 0.5
        motion = torch.stack(
            [moved & (dx < 0), moved & (dx > 0), moved & (dy < 0), moved & (dy > 0), ~moved & (grow > 0), ~moved & (grow < 0)], dim=-1
        ).float()
        appearance = torch.stack([_appearance(clip).mean(dim=0) for clip in videos])
        return torch.cat([motion, appearance], dim=-1)


class FrameClip(WordText):
    """An image model: colour and shape of one frame, and where the shape is (a direction no text names)."""

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        lit = images.amax(dim=1) > 0.5
        position = torch.stack([lit.float().mean(dim=(1, 2)), lit.float().argmax(dim=-1).amax(dim=-1) / SIZE], dim=-1)
        return torch.cat([torch.zeros(len(images), 6), _appearance(images), position * 0.1], dim=-1)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        words = super().encode_text(texts)
        return torch.cat([words, torch.zeros(len(texts), 2)], dim=-1)


def built(model: torch.nn.Module, arch: str) -> BuiltModel:
    preprocess = ImagePreprocess(size=(SIZE, SIZE), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    cfg = {"vlp": {"arch": arch}} if arch != "clip" else {}
    return BuiltModel(model=model, model_cfg=cfg, tokenizer=lambda texts: list(texts), preprocess=preprocess)
