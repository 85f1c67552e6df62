"""Moving shapes: a procedural video–text dataset, one shape per clip doing one of nine motions.

Clip `index` is a pure function of `(seed, index)`, like a shapes image: one `np.random.default_rng([seed, index])`
stream draws a fixed-length block first (caption coins, motion, shape, colour, size word, style, phrasing), so a
caption can be recomputed without rendering, then the clip's geometry. Pixels come from `shapes_render`, frame by
frame, each frame painted from a fresh `default_rng([seed, index, 1])`: the painters draw the same background,
texture crops and colour jitter every frame (their draws do not depend on where the shape is), so only the shape
moves. A frame where the shape is not yet there is painted with it far off the canvas, which keeps those draws equal.

Motions (the clip's class, `json["motion"]`): moving left / right / up / down (a straight slide over 60-100% of
the room the canvas leaves), rotating (90-180°, either way; circles and rings are never drawn rotating, being
round), growing and shrinking (between half and the whole of the size-word extent, which is the largest the shape
gets), bouncing (out to one side and back along a random axis), appearing (absent for the first 25-50% of frames,
then still). Shapes are smaller than in still images (`SIZE_FRACTION`) so that a slide has room to be seen.

Captions name the shape as image captions do (`partial_caption_rate` drops colour and/or size words) and the
motion in `motion_caption_rate` of clips (default: all); the rest describe the shape alone. For OmniVL-style joint
training two optional kinds of clip (both off by default): still clips (`still_fraction`; motion `still`, captioned
like an image) and labelled clips (`labelled_fraction`; captioned by the class prompt "a video of something moving
left" alone, `labelled: true`). The clip is an H.264 MP4 (yuv420p, `fps`, `frames` frames) under the sample's `mp4`
entry; `json` holds shape, colour, size, style, motion, frames, fps, the caption, `labelled`, and every frame's
tight [x0, y0, x1, y1) pixel box of the shape (null where it is absent).

`generate_shapes_video` writes webdataset shards in parallel and `manifest.json` last; the manifest lists the
motion and shape classes apart (`motions`, `shapes`) so evaluation can test motion and appearance separately.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from vlp.platform.storage import join, open_storage
from vlp.workloads.data import shapes_render
from vlp.workloads.data.shapes import (
    _NEUTRAL_TEMPLATES,
    _PARTIAL_MODES,
    _STYLE_MENTION_RATE,
    COLOURS,
    MANIFEST,
    SIZES,
    ShapesParamsError,
    _phrase,
    shard_name,
    write_shards,
)
from vlp.workloads.data.shapes_render import ANGLES, EXTENT_STEP, SHAPES, STYLES, PlacedObject
from vlp.workloads.data.video_codec import DEFAULT_CRF, PIXEL_FORMAT, encode_video

FORMAT = "vlp-shapes-video/1"
VIDEO_ENTRY = "mp4"
MOTIONS: tuple[str, ...] = (
    "moving left", "moving right", "moving up", "moving down", "rotating", "growing", "shrinking", "bouncing", "appearing",
)
STILL = "still"
"""The motion of a still clip: no motion class (see `VideoShapesParams.still_fraction`)."""
ROUND_SHAPES = ("circle", "ring")  # rotating them changes no pixel
SIZE_FRACTION = {"small": (0.25, 0.33), "large": (0.45, 0.55)}  # extent / image side: room left to move in
MAX_IMAGE_SIZE = 256
MAX_FRAMES = 128

# Two ways to say each motion: after a noun phrase ("a red star moving left") and as a verb ("a red star moves left").
_MOTION_WORDS = {
    "moving left": ("moving left", "moves to the left"),
    "moving right": ("moving right", "moves to the right"),
    "moving up": ("moving up", "moves upwards"),
    "moving down": ("moving down", "moves downwards"),
    "rotating": ("rotating", "spins around"),
    "growing": ("growing", "grows bigger"),
    "shrinking": ("shrinking", "shrinks"),
    "bouncing": ("bouncing", "bounces back"),
    "appearing": ("appearing", "appears"),
}
_PARTICIPLE_TEMPLATES = ("{} {}", "a video of {} {}", "a clip of {} {}", "footage of {} {}")
_VERB_TEMPLATES = ("{} {}",)
_STILL_TEMPLATES = ("{}", "a video of {}", "a clip of {}")
_STYLE_SUFFIX = ", {style} style"
_CLASS_PROMPT = "a video of something {}"  # what a labelled clip says: its class and nothing else, as Kinetics' prompts

__all__ = ["MOTIONS", "FORMAT", "VideoShapesParams", "render_clip", "caption_for", "generate_shapes_video"]


@dataclass(frozen=True)
class VideoShapesParams:
    """What to generate. Two datasets with equal params are byte-identical (on one FFmpeg build)."""

    samples: int
    """Number of clip–caption pairs."""
    seed: int
    """Seed; clip i depends only on (seed, i)."""
    image_size: int = 32
    """Side of the square frames in pixels (even: H.264 in yuv420p halves the colour planes)."""
    frames: int = 16
    """Frames per clip."""
    fps: int = 8
    """Frame rate written in the file."""
    motions: tuple[str, ...] = MOTIONS
    """Motion classes to draw from, uniformly."""
    styles: tuple[str, ...] = STYLES
    """Render styles (domains) to draw from, uniformly."""
    partial_caption_rate: float = 0.5
    """Share of captions that drop the colour words, the size words, or both (the shape word stays)."""
    motion_caption_rate: float = 1.0
    """Share of captions that name the motion; the others describe the shape alone."""
    still_fraction: float = 0.0
    """Share of clips whose shape stays put, captioned as a still image is ("a picture of a red star"): images for
    joint image + video training (OmniVL). Their motion is `still`, which is no motion class."""
    labelled_fraction: float = 0.0
    """Share of clips captioned by their class prompt alone ("a video of something moving left") and marked
    `labelled` in their json: the labelled clips of OmniVL's unified contrastive loss (the others are plain pairs)."""
    crf: int = DEFAULT_CRF
    """x264 constant-rate factor (0 lossless luma, 51 worst)."""
    shard_size: int = 500
    """Clips per tar shard."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "motions", tuple(self.motions))
        object.__setattr__(self, "styles", tuple(self.styles))
        problems = []
        if self.samples < 1:
            problems.append(f"samples must be >= 1 (got {self.samples})")
        if not 16 <= self.image_size <= MAX_IMAGE_SIZE or self.image_size % 2:
            problems.append(f"image_size must be even and in [16, {MAX_IMAGE_SIZE}] (got {self.image_size})")
        if not 2 <= self.frames <= MAX_FRAMES:
            problems.append(f"frames must be in [2, {MAX_FRAMES}] (got {self.frames})")
        if not 1 <= self.fps <= 60:
            problems.append(f"fps must be in [1, 60] (got {self.fps})")
        if not self.motions or any(m not in MOTIONS for m in self.motions) or len(set(self.motions)) != len(self.motions):
            problems.append(f"motions must be distinct ones of {', '.join(MOTIONS)} (got {list(self.motions)})")
        if not self.styles or any(s not in STYLES for s in self.styles):
            problems.append(f"styles must be a non-empty subset of {', '.join(STYLES)} (got {list(self.styles)})")
        for name in ("partial_caption_rate", "motion_caption_rate", "still_fraction", "labelled_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1] (got {getattr(self, name)})")
        if self.still_fraction + self.labelled_fraction > 1.0:
            problems.append(f"still_fraction + labelled_fraction must be at most 1 (got {self.still_fraction} + {self.labelled_fraction})")
        if not 0 <= self.crf <= 51:
            problems.append(f"crf must be in [0, 51] (got {self.crf})")
        if self.shard_size < 1:
            problems.append(f"shard_size must be >= 1 (got {self.shard_size})")
        if problems:
            raise ShapesParamsError("shapes video: " + "; ".join(problems))


# ---------------------------------------------------------------------------------------------
# What is in a clip, and its caption (no pixels).


@dataclass(frozen=True)
class _Plot:
    shape: str
    colour: str
    size: str
    style: str
    motion: str
    caption: str
    labelled: bool


def _plot(params: VideoShapesParams, rng: np.random.Generator, index: int) -> _Plot:
    # One fixed-length draw, so the geometry that follows starts at the same place in the stream for every clip.
    (partial_coin, partial_mode, motion_coin, style_coin, template_u, verb_u,
     motion_u, shape_u, colour_u, size_u, style_u) = rng.random(11).tolist()
    # Whether a clip is still or labelled comes from a stream of its own: the fractions change no other clip.
    role_u = float(np.random.default_rng([params.seed, index, 2]).random())
    still = role_u < params.still_fraction
    labelled = not still and role_u < params.still_fraction + params.labelled_fraction
    motion = STILL if still else params.motions[int(motion_u * len(params.motions))]
    shapes = tuple(s for s in SHAPES if s not in ROUND_SHAPES) if motion == "rotating" else SHAPES
    shape, colour = shapes[int(shape_u * len(shapes))], COLOURS[int(colour_u * len(COLOURS))]
    size, style = SIZES[int(size_u * len(SIZES))], params.styles[int(style_u * len(params.styles))]
    drop = _PARTIAL_MODES[int(partial_mode * 3)] if partial_coin < params.partial_caption_rate else ""
    subject = _phrase(shape, colour, size, drop)
    if labelled:
        return _Plot(shape, colour, size, style, motion, _CLASS_PROMPT.format(motion), labelled=True)
    if still:
        caption = _NEUTRAL_TEMPLATES[int(template_u * len(_NEUTRAL_TEMPLATES))].format(subject)
    elif motion_coin < params.motion_caption_rate:
        as_verb = verb_u < 0.5
        templates = _VERB_TEMPLATES if as_verb else _PARTICIPLE_TEMPLATES
        caption = templates[int(template_u * len(templates))].format(subject, _MOTION_WORDS[motion][as_verb])
    else:
        caption = _STILL_TEMPLATES[int(template_u * len(_STILL_TEMPLATES))].format(subject)
    if style_coin < _STYLE_MENTION_RATE:
        caption += _STYLE_SUFFIX.format(style=style)
    return _Plot(shape, colour, size, style, motion, caption, labelled=False)


def caption_for(params: VideoShapesParams, index: int) -> str:
    """The caption of clip `index`, computed without rendering it."""
    return _plot(params, np.random.default_rng([params.seed, index]), index).caption


# ---------------------------------------------------------------------------------------------
# Where the shape is in each frame.


@dataclass(frozen=True)
class _Pose:
    extent: float
    angle: float
    cx: float  # centre of the outline's box at angle 0, in pixels
    cy: float
    visible: bool = True


def _poses(plot: _Plot, size: int, frames: int, rng: np.random.Generator) -> list[_Pose]:
    """The shape's pose in every frame: drawn from `rng` after the plot, in one fixed-length block."""
    extent_u, angle_u, x_u, y_u, travel_u, start_u, turn_u, axis_u, way_u, appear_u, scale_u = rng.random(11).tolist()
    lo, hi = SIZE_FRACTION[plot.size]
    extent = _snap((lo + (hi - lo) * extent_u) * size)
    angle = 0.0 if plot.shape in ROUND_SHAPES else ANGLES[int(angle_u * len(ANGLES))]
    progress = [t / (frames - 1) for t in range(frames)]
    motion = plot.motion
    half_w, half_h = _half_box(plot.shape, extent, angle)

    def spot(u: float, half: float) -> float:
        """A centre coordinate keeping a box of half-side `half` inside the 1 px border."""
        return 1 + half + u * max(size - 2 - 2 * half, 0.0)

    if motion in ("moving left", "moving right", "moving up", "moving down", "bouncing"):
        if motion == "bouncing":
            horizontal, forward = axis_u < 0.5, way_u < 0.5
            paths = [1 - abs(1 - 2 * p) for p in progress]  # out and back
        else:
            horizontal, forward = motion in ("moving left", "moving right"), motion in ("moving right", "moving down")
            paths = progress
        half_along, half_across = (half_w, half_h) if horizontal else (half_h, half_w)
        room = max(size - 2 - 2 * half_along, 0.0)
        travel = room * (0.6 + 0.4 * travel_u)
        first = 1 + half_along + start_u * (room - travel) + (0.0 if forward else travel)
        step = travel if forward else -travel
        across = spot(y_u if horizontal else x_u, half_across)
        along = [_quarter(first + step * p) for p in paths]
        return [_Pose(extent, angle, a, across) if horizontal else _Pose(extent, angle, across, a) for a in along]
    if motion == "rotating":
        radius = _radius(plot.shape, extent)
        cx, cy = spot(x_u, radius), spot(y_u, radius)
        turn = (math.pi / 2 + turn_u * math.pi / 2) * (1 if way_u < 0.5 else -1)
        return [_Pose(extent, angle + turn * p, cx, cy) for p in progress]
    cx, cy = _quarter(spot(x_u, half_w)), _quarter(spot(y_u, half_h))
    if motion in ("growing", "shrinking"):
        low = 0.5 + 0.1 * scale_u
        scales = [low + (1 - low) * p for p in progress]
        scales = scales if motion == "growing" else scales[::-1]
        return [_Pose(_snap(extent * s), angle, cx, cy) for s in scales]
    if motion == STILL:
        return [_Pose(extent, angle, cx, cy)] * frames
    if motion == "appearing":
        first_seen = round(frames * (0.25 + 0.25 * appear_u))
        return [_Pose(extent, angle, cx, cy, visible=t >= max(first_seen, 1)) for t in range(frames)]
    raise ValueError(f"unknown motion {motion!r}; known: {', '.join(MOTIONS)}")


def _snap(extent: float) -> float:
    return max(2.0, round(extent / EXTENT_STEP) * EXTENT_STEP)


def _quarter(value: float) -> float:
    """Quarter-pixel positions: smooth enough motion, and sprites still repeat across frames and clips."""
    return round(value * 4) / 4


def _half_box(shape: str, extent: float, angle: float) -> tuple[float, float]:
    pts = np.concatenate([ring for ring, _ in shapes_render.outline(shape, extent, angle)])
    return float(np.abs(pts[:, 0]).max()), float(np.abs(pts[:, 1]).max())


def _radius(shape: str, extent: float) -> float:
    """The farthest outline point from the centre: the disc a rotating shape stays inside."""
    pts = np.concatenate([ring for ring, _ in shapes_render.outline(shape, extent, 0.0)])
    return float(np.hypot(pts[:, 0], pts[:, 1]).max())


def _placed(plot: _Plot, pose: _Pose, size: int) -> PlacedObject:
    """The renderer's object: its outline box's top-left corner; an absent shape sits far past the canvas."""
    pts = np.concatenate([ring for ring, _ in shapes_render.outline(plot.shape, pose.extent, pose.angle)])
    x0, y0 = pts.min(axis=0).tolist()
    if not pose.visible:
        return PlacedObject(plot.shape, plot.colour, pose.extent, pose.angle, 8.0 * size, 8.0 * size)
    return PlacedObject(plot.shape, plot.colour, pose.extent, pose.angle, pose.cx + x0, pose.cy + y0)


# ---------------------------------------------------------------------------------------------
# Clips.


def render_frames(params: VideoShapesParams, index: int) -> tuple[_Plot, np.ndarray, list]:
    """(plot, T×H×W×3 uint8 frames, per-frame box or None) of clip `index`."""
    rng = np.random.default_rng([params.seed, index])
    plot = _plot(params, rng, index)
    poses = _poses(plot, params.image_size, params.frames, rng)
    frames, boxes = [], []
    for pose in poses:
        paint = np.random.default_rng([params.seed, index, 1])  # the same background and colours every frame
        image, _, (box,) = shapes_render.render(paint, params.image_size, plot.style, [_placed(plot, pose, params.image_size)])
        frames.append(image)
        boxes.append(box if pose.visible else None)
    return plot, np.stack(frames), boxes


def render_clip(params: VideoShapesParams, index: int) -> dict:
    """Clip `index` as a webdataset sample: {"__key__", "mp4", "txt", "json"} (see the module docstring)."""
    plot, frames, boxes = render_frames(params, index)
    meta = {
        "shape": plot.shape, "colour": plot.colour, "size": plot.size, "style": plot.style, "motion": plot.motion,
        "frames": params.frames, "fps": params.fps, "caption_clean": plot.caption, "labelled": plot.labelled, "boxes": boxes,
    }
    return {
        "__key__": f"{index:08d}",
        VIDEO_ENTRY: encode_video(frames, params.fps, params.crf),
        "txt": plot.caption,
        "json": meta,
    }


# ---------------------------------------------------------------------------------------------
# Shards.


def generate_shapes_video(
    params: VideoShapesParams,
    out_uri: str,
    processes: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> dict:
    """Write the dataset to `out_uri` (local path or s3://) and return its manifest; shards in parallel
    (`shapes.write_shards`: spawned processes, `processes` defaults to the CPU count), the manifest last."""
    started = time.perf_counter()
    sizes = write_shards(render_clip, params, out_uri, processes, on_progress)
    seconds = time.perf_counter() - started
    manifest = {
        "format": FORMAT,
        "samples": params.samples,
        "seed": params.seed,
        "image_size": params.image_size,
        "frames": params.frames,
        "fps": params.fps,
        "video": {"entry": VIDEO_ENTRY, "container": "mp4", "codec": "h264", "pix_fmt": PIXEL_FORMAT, "crf": params.crf},
        "shards": [shard_name(shard) for shard in range(len(sizes))],
        "shard_sizes": sizes,
        "motions": list(params.motions),
        "shapes": list(SHAPES),
        "classes": {"motion": list(params.motions), "shape": list(SHAPES), "colour": list(COLOURS), "size": list(SIZES)},
        "domains": list(params.styles),
        "partial_caption_rate": params.partial_caption_rate,
        "motion_caption_rate": params.motion_caption_rate,
        "still_fraction": params.still_fraction,
        "labelled_fraction": params.labelled_fraction,
        "seconds": round(seconds, 3),
        "samples_per_second": round(params.samples / seconds, 1) if seconds > 0 else None,
    }
    open_storage(out_uri).write_bytes(join(out_uri, MANIFEST), json.dumps(manifest, indent=2).encode("utf-8"))
    return manifest
