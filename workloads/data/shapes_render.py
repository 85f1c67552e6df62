"""Pixels for the shapes dataset: shape outlines, the four render styles, and PNG encoding.

Each object is drawn as an antialiased coverage map: its outline polygons are filled with PIL at
`_supersample(size)`× and box-downsampled, so edges stay clean at 32 px. Styles then composite
colour fields through those maps with numpy. Nothing here decides *what* is in a picture; that
(and every caption) comes from `vlp.workloads.data.shapes`, which hands over a `Scene`.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

# Eight outlines that stay apart at 32 px even when small (~8-10 px): no hexagon/pentagon, which
# read as circles at that size.
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "cross", "ring", "crescent")

# Saturated colours that keep their name under every style, including the light hatch of a sketch.
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (215, 30, 30),
    "orange": (245, 135, 10),
    "yellow": (240, 215, 20),
    "green": (30, 160, 50),
    "cyan": (20, 200, 215),
    "blue": (30, 60, 215),
    "purple": (135, 40, 185),
    "pink": (250, 110, 200),
}

STYLES: tuple[str, ...] = ("photo", "cartoon", "sketch", "painting")

Ring = tuple[np.ndarray, bool]  # (N×2 polygon points, is_hole)


@dataclass(frozen=True)
class PlacedObject:
    """One object in image pixel coordinates: its outline rings and the colour it is painted in."""

    shape: str
    colour: str
    rings: tuple[Ring, ...]


# ---------------------------------------------------------------------------------------------
# Geometry: outlines centred on the origin whose unrotated extent is `d` pixels.


def _regular(n: int, radius: float, start: float) -> np.ndarray:
    angles = start + np.arange(n) * (2 * math.pi / n)
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


def _circle_points(radius: float) -> np.ndarray:
    return _regular(32, radius, 0.0)


def outline(shape: str, d: float, angle: float) -> tuple[Ring, ...]:
    """Polygon rings for `shape` with extent `d`, rotated by `angle` radians (y points down)."""
    r = d / 2
    if shape == "circle":
        rings = [(_circle_points(r), False)]
    elif shape == "square":
        rings = [(_regular(4, r * 0.92 * math.sqrt(2), math.pi / 4), False)]
    elif shape == "triangle":
        # Equilateral, apex up, centred on its bounding box.
        h = d * math.sqrt(3) / 2
        pts = np.array([(0.0, -h / 2), (r, h / 2), (-r, h / 2)]) * 1.06
        rings = [(pts, False)]
    elif shape == "diamond":
        # Taller than wide, so it never reads as a rotated square.
        rings = [(np.array([(0.0, -r), (0.72 * r, 0.0), (0.0, r), (-0.72 * r, 0.0)]), False)]
    elif shape == "star":
        angles = -math.pi / 2 + np.arange(10) * (math.pi / 5)
        radii = np.where(np.arange(10) % 2 == 0, r * 1.05, r * 0.45)
        rings = [(np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1), False)]
    elif shape == "cross":
        a, t = r, r * 0.36
        pts = [(-t, -a), (t, -a), (t, -t), (a, -t), (a, t), (t, t), (t, a), (-t, a), (-t, t), (-a, t), (-a, -t), (-t, -t)]
        rings = [(np.array(pts), False)]
    elif shape == "ring":
        rings = [(_circle_points(r), False), (_circle_points(r * 0.5), True)]
    elif shape == "crescent":
        rings = [(_crescent(r, offset=0.75 * r), False)]
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    if angle:
        c, s = math.cos(angle), math.sin(angle)
        rot = np.array([[c, s], [-s, c]])
        rings = [(pts @ rot, hole) for pts, hole in rings]
    return tuple(rings)


def _crescent(r: float, offset: float) -> np.ndarray:
    """A disc of radius r minus the same disc moved right by `offset`: horns point right."""
    beta = math.acos(offset / 2 / r)  # angle of the two intersection points, seen from either centre
    outer = np.linspace(beta, 2 * math.pi - beta, 24)
    inner = np.linspace(math.pi + beta, math.pi - beta, 16)[1:-1]
    pts = np.concatenate(
        [
            np.stack([r * np.cos(outer), r * np.sin(outer)], axis=1),
            np.stack([offset + r * np.cos(inner), r * np.sin(inner)], axis=1),
        ]
    )
    return pts - [(pts[:, 0].min() + pts[:, 0].max()) / 2, 0.0]


def bounds(rings: tuple[Ring, ...]) -> tuple[float, float, float, float]:
    pts = np.concatenate([pts for pts, _ in rings])
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


def translate(rings: tuple[Ring, ...], dx: float, dy: float) -> tuple[Ring, ...]:
    return tuple((pts + (dx, dy), hole) for pts, hole in rings)


# ---------------------------------------------------------------------------------------------
# Layout.

# Extent as a fraction of the image side for one object; with n objects both shrink by
# `_crowding(n)` so they fit side by side, and the ratio large/small (~1.9) stays visible.
SIZE_FRACTION = {"small": (0.30, 0.40), "large": (0.55, 0.75)}


def _crowding(n: int) -> float:
    return 1.0 if n <= 1 else 0.8 * math.sqrt(2 / n)


def place(rng: np.random.Generator, size: int, specs: list[tuple[str, str, str]]) -> list[PlacedObject]:
    """Random, non-overlapping positions (1 px apart, inside the image) for (shape, colour, size) specs.

    Tries random positions; when a layout does not fit it shrinks every object by 10% and starts
    again, and after that many rounds it accepts overlaps rather than loop forever.
    """
    crowd = _crowding(len(specs))
    extents = [rng.uniform(*SIZE_FRACTION[size_word]) * size * crowd for _, _, size_word in specs]
    angles = [0.0 if shape in ("circle", "ring") else rng.uniform(-0.2, 0.2) for shape, _, _ in specs]
    scale = 1.0
    for attempt in range(12):
        placed, taken = [], np.empty((0, 4))
        for (shape, colour, _), extent, angle in zip(specs, extents, angles):
            rings = outline(shape, extent * scale, angle)
            x0, y0, x1, y1 = bounds(rings)
            w, h = x1 - x0, y1 - y0
            # 16 candidate top-left corners at once; take the first that keeps 1 px from the others.
            corners = 0.5 + rng.random((16, 2)) * [max(size - 1 - w, 0.0), max(size - 1 - h, 0.0)]
            boxes = np.concatenate([corners, corners + [w, h]], axis=1)
            ok = _apart(boxes, taken).nonzero()[0] if attempt < 11 else np.array([0])
            if ok.size == 0:
                break
            box = boxes[ok[0]]
            taken = np.vstack([taken, box])
            placed.append(PlacedObject(shape, colour, translate(rings, box[0] - x0, box[1] - y0)))
        if len(placed) == len(specs):
            return placed
        scale *= 0.9
    raise AssertionError("unreachable: the last round accepts overlaps")


def _apart(boxes: np.ndarray, taken: np.ndarray, gap: float = 1.0) -> np.ndarray:
    """For each candidate box (rows of x0, y0, x1, y1): is it at least `gap` from every taken box?"""
    a, b = boxes[:, None, :], taken[None, :, :]
    separate = (a[..., 2] + gap <= b[..., 0]) | (b[..., 2] + gap <= a[..., 0]) | (a[..., 3] + gap <= b[..., 1]) | (b[..., 3] + gap <= a[..., 1])
    return separate.all(axis=1)


# ---------------------------------------------------------------------------------------------
# Coverage maps.


def _supersample(size: int) -> int:
    return 4 if size <= 64 else 2 if size <= 256 else 1


def _coverage(rings, size: int, *, stroke: float = 0.0) -> np.ndarray:
    """Antialiased coverage in [0, 1] of the filled rings or, with `stroke`, of a line that many px
    wide just inside each ring's boundary. Only the object's own crop is drawn, at
    `_supersample(size)`× and box-reduced."""
    f = _supersample(size)
    pts = np.concatenate([p for p, _ in rings])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    x0, y0 = max(int(lo[0]) - 1, 0), max(int(lo[1]) - 1, 0)
    x1, y1 = min(int(hi[0]) + 3, size), min(int(hi[1]) + 3, size)
    out = np.zeros((size, size), np.float32)
    if x1 <= x0 or y1 <= y0:
        return out
    canvas = Image.new("L", ((x1 - x0) * f, (y1 - y0) * f), 0)
    draw = ImageDraw.Draw(canvas)
    shift = np.array([0.5 - x0, 0.5 - y0])
    for ring, hole in rings:
        xy = [tuple(p) for p in ((ring + shift) * f - 0.5).tolist()]
        if stroke:
            draw.polygon(xy, outline=255, width=max(1, round(stroke * f)))
        else:
            draw.polygon(xy, fill=0 if hole else 255)
    small = np.frombuffer(canvas.reduce(f).tobytes(), np.uint8).reshape(y1 - y0, x1 - x0)
    out[y0:y1, x0:x1] = small
    out *= 1.0 / 255.0
    return out


def _jitter(rings, rng: np.random.Generator, amount: float):
    return tuple((pts + rng.normal(0.0, amount, pts.shape), hole) for pts, hole in rings)


# ---------------------------------------------------------------------------------------------
# Textures. Noise is cut from a small bank of tiles made once per process from a fixed seed (a
# random crop, flip and transpose per use), because fresh noise per sample cost more than the
# rest of the picture. The bank depends on nothing but the image size, so samples stay a pure
# function of (seed, index).

_BANK_TILES = 6


@lru_cache(maxsize=4)
def _bank(size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240611)
    big = 2 * size

    def smooth(cells: tuple[int, int], channels: int) -> np.ndarray:
        coarse = rng.uniform(0, 255, (*cells, channels)).astype(np.uint8)
        image = Image.fromarray(coarse[..., 0] if channels == 1 else coarse)
        return np.asarray(image.resize((big, big), Image.BICUBIC), dtype=np.float32) / 127.5 - 1.0

    n = max(4, size // 3) * 2
    return {
        # Low-frequency colour blotches (painting backgrounds).
        "blotch": np.stack([smooth((8, 8), 3) for _ in range(_BANK_TILES)]),
        # Mid-frequency value noise (paint thickness within a shape).
        "patch": np.stack([smooth((12, 12), 1) for _ in range(_BANK_TILES)]),
        # Brush streaks: long along x, short along y; transposed on use for vertical strokes.
        "streak": np.stack([smooth((n, 6), 1) for _ in range(_BANK_TILES)]),
        # Sensor / paper grain.
        "grain": rng.normal(0.0, 1.0, (_BANK_TILES, big, big, 3)).astype(np.float32),
    }


def _texture(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    tiles = _bank(size)[kind]
    k, dy, dx, flip, transpose = rng.integers(0, [len(tiles), size, size, 4, 2])
    tile = tiles[k, dy : dy + size, dx : dx + size]
    if flip & 1:
        tile = tile[::-1]
    if flip & 2:
        tile = tile[:, ::-1]
    return tile.swapaxes(0, 1) if transpose else tile


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    return xs, ys


@lru_cache(maxsize=8)
def _hatch(size: int) -> np.ndarray:
    """Two diagonal hatchings (/ and \\), as coverage weights: dense on the lines, light between."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    period = 3.0 * max(size / 32, 1)
    out = []
    for phase in ((xs + ys) / period, (xs - ys) / period):
        out.append(np.where((phase - np.floor(phase)) < 0.4, 0.8, 0.28).astype(np.float32))
    return np.stack(out)


def _muted(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """A background colour halfway to grey, so the objects' colours stay the most saturated thing."""
    colour = rng.uniform(low, high, 3)
    return (0.5 * colour + 0.5 * colour.mean()).astype(np.float32)


def _object_colour(rng: np.random.Generator, name: str) -> np.ndarray:
    return np.clip(np.asarray(COLOUR_RGB[name], dtype=np.float32) + rng.uniform(-12, 12, 3), 0, 255).astype(np.float32)


def _paint(image: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> None:
    """image ← image·(1−α) + colour·α, in place; colour is an RGB triple or an H×W×3 field."""
    a = alpha[..., None]
    image -= (image - colour) * a


# ---------------------------------------------------------------------------------------------
# Styles: each paints the background, then every object in order.


def _photo(rng, size, objects, alphas):
    # Smooth two-colour gradient; each object casts a soft shadow and is lit from one side.
    xs, ys = _grid(size)
    theta, light = rng.uniform(0, 2 * math.pi, 2)
    t = np.clip(0.5 + (xs - 0.5) * math.cos(theta) + (ys - 0.5) * math.sin(theta), 0, 1)[..., None]
    top, bottom = _muted(rng, 70, 210), _muted(rng, 70, 210)
    image = top + (bottom - top) * t
    shift = max(1, size // 32)
    for obj, alpha in zip(objects, alphas):
        shadow = np.zeros_like(alpha)
        shadow[shift:, shift:] = alpha[:-shift, :-shift]
        image *= 1.0 - 0.35 * shadow[..., None]
        x0, y0, x1, y1 = _alpha_box(alpha)
        cx, cy, span = (x0 + x1) / 2 / size, (y0 + y1) / 2 / size, max(x1 - x0, y1 - y0, 1) / size
        shade = 1.0 - (0.45 / span) * ((xs - cx) * math.cos(light) + (ys - cy) * math.sin(light))
        _paint(image, _object_colour(rng, obj.colour) * shade[..., None], alpha)
    image += 4.0 * _texture(rng, size, "grain")
    return image


def _cartoon(rng, size, objects, alphas):
    # Flat pale background, flat fill, thick dark outline.
    image = np.empty((size, size, 3), np.float32)
    image[:] = rng.uniform(205, 250, 3)
    width = 1.25 * size / 32
    for obj, alpha in zip(objects, alphas):
        _paint(image, _object_colour(rng, obj.colour), alpha)
        _paint(image, np.float32([25, 25, 30]), _coverage(obj.rings, size, stroke=width))
    return image


def _sketch(rng, size, objects, alphas):
    # Paper; coloured-pencil hatching inside each shape, then two jittered graphite outlines.
    image = np.empty((size, size, 3), np.float32)
    image[:] = rng.uniform(236, 252) + np.float32([2.0, 0.0, -6.0])
    hatch = _hatch(size)[int(rng.integers(2))]
    grey = rng.uniform(40, 90)
    pencil = np.float32([grey, grey, grey])
    width = 0.8 * size / 32
    for obj, alpha in zip(objects, alphas):
        _paint(image, _object_colour(rng, obj.colour), alpha * hatch)
        for strength in (0.95, 0.55):
            stroke = _coverage(_jitter(obj.rings, rng, 0.35 * size / 32), size, stroke=width)
            _paint(image, pencil, stroke * strength)
    image += 2.5 * _texture(rng, size, "grain")[..., :1]
    return image


def _painting(rng, size, objects, alphas):
    # Blotchy, streaky canvas; shapes filled with uneven, brushed paint.
    image = _muted(rng, 70, 200) + 22.0 * _texture(rng, size, "blotch") + 14.0 * _texture(rng, size, "streak")[..., None]
    for obj, alpha in zip(objects, alphas):
        variation = 1.0 + 0.2 * _texture(rng, size, "patch") + 0.12 * _texture(rng, size, "streak")
        _paint(image, _object_colour(rng, obj.colour) * variation[..., None], alpha)
    return image


_STYLE_PAINTERS = {"photo": _photo, "cartoon": _cartoon, "sketch": _sketch, "painting": _painting}


def _alpha_box(alpha: np.ndarray, threshold: float = 0.5) -> tuple[int, int, int, int]:
    """Tight [x0, y0, x1, y1) box of the pixels above threshold (x1/y1 exclusive)."""
    rows = np.flatnonzero((alpha > threshold).any(axis=1))
    cols = np.flatnonzero((alpha > threshold).any(axis=0))
    if rows.size == 0:
        if threshold > 0:
            return _alpha_box(alpha, 0.0)
        return 0, 0, 0, 0
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


# ---------------------------------------------------------------------------------------------
# Entry point.


def render(rng: np.random.Generator, size: int, style: str, objects: list[PlacedObject]) -> tuple[np.ndarray, np.ndarray, list]:
    """Paint `objects` in `style`. Returns (RGB uint8 image, uint8 mask with i+1 for object i, boxes).

    Each box is the tight [x0, y0, x1, y1) pixel box of its object's coverage; every mask pixel of
    object i lies inside box i.
    """
    alphas = [_coverage(obj.rings, size) for obj in objects]
    image = _STYLE_PAINTERS[style](rng, size, objects, alphas)
    mask = np.zeros((size, size), np.uint8)
    boxes = []
    for i, alpha in enumerate(alphas):
        mask[alpha > 0.5] = i + 1
        boxes.append(list(_alpha_box(alpha)))
    return np.clip(image, 0, 255).astype(np.uint8), mask, boxes


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes (RGB for H×W×3 uint8, greyscale L for H×W), any decoder reads them.

    Written directly with zlib (level 1, PNG "sub" filter on every row): for 32×32 images PIL's
    encoder spends ~4× longer in per-call overhead, which was half of the whole sample's budget.
    """
    h, w = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    rows = np.ascontiguousarray(array, dtype=np.uint8).reshape(h, w * channels)
    raw = np.empty((h, w * channels + 1), np.uint8)
    raw[:, 0] = 1  # filter type "sub": each byte minus the same channel of the pixel to its left
    raw[:, 1:] = rows
    raw[:, 1 + channels:] -= rows[:, :-channels]
    header = struct.pack(">IIBBBBB", w, h, 8, 0 if channels == 1 else 2, 0, 0, 0)
    return b"".join(
        [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", header), _chunk(b"IDAT", zlib.compress(raw.tobytes(), 1)), _chunk(b"IEND", b"")]
    )


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
