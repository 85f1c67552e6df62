"""Pixels for the shapes dataset: outlines, layout, the four render styles, and PNG encoding.

Nothing here decides *what* is in a picture (that, and every caption, comes from
`vlp.workloads.data.shapes`); this module decides where things go and how they look.

How an object becomes pixels: its outline polygons are filled with PIL at `_supersample(size)`×
and box-reduced into an antialiased coverage crop (a "sprite"), so edges stay clean at 32 px.
Styles composite colour fields through sprites with numpy, touching only each object's crop.
Geometry is snapped (half-pixel extents, whole-pixel positions, three rotations), so sprites
repeat and are cached per process: drawing was most of a sample's cost before. Noise textures
come from a per-process bank made from a fixed seed for the same reason. Both caches depend only
on their keys, so a sample stays a pure function of its (seed, index).
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

# Eight outlines that stay apart at 32 px even when small (~8-10 px). Hexagons and pentagons were
# left out: at that size they read as circles.
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "cross", "ring", "crescent")

# Saturated colours that keep their name under every style, including a sketch's light hatching.
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

EXTENT_STEP = 0.5  # px: extents are multiples of this, positions whole pixels, so sprites repeat
ANGLES = (-0.18, 0.0, 0.18)  # radians: the rotations a non-round shape may take (few, so sprites repeat)
SIZE_FRACTION = {"small": (0.30, 0.40), "large": (0.55, 0.75)}  # extent / image side, one object

PNG_COMPRESS_LEVEL = 1  # zlib level: speed over size

Ring = tuple[np.ndarray, bool]  # (N×2 polygon points, is_hole)


@dataclass(frozen=True)
class PlacedObject:
    """An object on the image: its outline's bounding box starts at (x, y), pixel-centre coordinates."""

    shape: str
    colour: str
    extent: float
    angle: float
    x: float
    y: float


# ---------------------------------------------------------------------------------------------
# Outlines, centred on the origin, unrotated extent `d` px (y points down).


def _regular(n: int, radius: float, start: float) -> np.ndarray:
    angles = start + np.arange(n) * (2 * math.pi / n)
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


@lru_cache(maxsize=8192)
def outline(shape: str, d: float, angle: float = 0.0) -> tuple[Ring, ...]:
    """Polygon rings for `shape` with extent `d`, rotated by `angle` radians."""
    r = d / 2
    if shape == "circle":
        rings = [(_regular(32, r, 0.0), False)]
    elif shape == "square":
        rings = [(_regular(4, r * 0.92 * math.sqrt(2), math.pi / 4), False)]
    elif shape == "triangle":  # equilateral, apex up, centred on its bounding box
        h = d * math.sqrt(3) / 2
        rings = [(np.array([(0.0, -h / 2), (r, h / 2), (-r, h / 2)]) * 1.06, False)]
    elif shape == "diamond":  # taller than wide, so it never reads as a rotated square
        rings = [(np.array([(0.0, -r), (0.75 * r, 0.0), (0.0, r), (-0.75 * r, 0.0)]) * 1.05, False)]
    elif shape == "star":
        angles = -math.pi / 2 + np.arange(10) * (math.pi / 5)
        radii = np.where(np.arange(10) % 2 == 0, r * 1.05, r * 0.45)
        rings = [(np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1), False)]
    elif shape == "cross":
        a, t = r, r * 0.36
        pts = [(-t, -a), (t, -a), (t, -t), (a, -t), (a, t), (t, t), (t, a), (-t, a), (-t, t), (-a, t), (-a, -t), (-t, -t)]
        rings = [(np.array(pts), False)]
    elif shape == "ring":
        rings = [(_regular(32, r, 0.0), False), (_regular(24, r * 0.55, 0.0), True)]
    elif shape == "crescent":
        rings = [(_crescent(r, offset=0.75 * r), False)]
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    if angle:
        c, s = math.cos(angle), math.sin(angle)
        rot = np.array([[c, s], [-s, c]])
        rings = [(pts @ rot, hole) for pts, hole in rings]
    for pts, _ in rings:
        pts.setflags(write=False)  # cached and shared
    return tuple(rings)


def _crescent(r: float, offset: float) -> np.ndarray:
    """A disc of radius r minus the same disc moved right by `offset`: horns point right."""
    beta = math.acos(offset / 2 / r)  # where the circles cross, seen from either centre
    outer = np.linspace(beta, 2 * math.pi - beta, 24)
    inner = np.linspace(math.pi + beta, math.pi - beta, 16)[1:-1]
    return np.concatenate(
        [
            np.stack([r * np.cos(outer), r * np.sin(outer)], axis=1),
            np.stack([offset + r * np.cos(inner), r * np.sin(inner)], axis=1),
        ]
    )


@lru_cache(maxsize=4096)
def _outline_box(shape: str, extent: float, angle: float) -> tuple[float, float, float, float]:
    pts = np.concatenate([pts for pts, _ in outline(shape, extent, angle)])
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


# ---------------------------------------------------------------------------------------------
# Layout.


def _crowding(n: int, word: str) -> float:
    """With n objects every extent shrinks by this so they fit side by side; small ones shrink less
    (they would fall below ~8 px, where a star or a crescent stops reading as one)."""
    return 1.0 if n <= 1 else math.sqrt(2 / n) * (0.85 if word == "large" else 0.9)


def _snap(value: float) -> float:
    return max(2.0, round(value / EXTENT_STEP) * EXTENT_STEP)


def place(rng: np.random.Generator, size: int, specs: list[tuple[str, str, str]]) -> list[PlacedObject]:
    """Random positions for (shape, colour, size word) specs: inside a 1 px border, 1 px apart.

    Large objects too big to sit side by side are first scaled down to fit. Two objects are then
    placed in one go (`_pair`); more are scattered at random (`_scatter`). When a layout does not
    fit every object shrinks by 10% and it starts again; the last round accepts overlaps.
    """
    n = len(specs)
    draws = rng.random(2 * n).tolist()
    extents, angles = [], []
    for (shape, _, word), u, v in zip(specs, draws[0::2], draws[1::2]):
        lo, hi = SIZE_FRACTION[word]
        extents.append((lo + (hi - lo) * u) * size * _crowding(n, word))
        angles.append(0.0 if shape in ("circle", "ring") else ANGLES[int(v * len(ANGLES))])
    # The two largest must fit in a row inside the border, 1 px apart; if not, large ones shrink.
    two = sorted(range(n), key=extents.__getitem__)[-2:] if n > 1 else []
    large = sum(extents[i] for i in two if specs[i][2] == "large")
    room = size - 3.0 - sum(extents[i] for i in two if specs[i][2] != "large")
    if large > room > 0:
        extents = [e * room / large if word == "large" else e for e, (_, _, word) in zip(extents, specs)]
    scale, rounds = 1.0, 12
    for attempt in range(rounds):
        extents_now = [_snap(e * scale) for e in extents]
        dims = []
        for (shape, _, _), extent, angle in zip(specs, extents_now, angles):
            x0, y0, x1, y1 = _outline_box(shape, extent, angle)
            dims.append((x1 - x0, y1 - y0))
        last = attempt == rounds - 1
        spots = _pair(rng, size, dims) if n == 2 else None
        if spots is None and (n != 2 or last):
            spots = _scatter(rng, size, dims, overlap_ok=last)
        if spots is not None:
            return [
                PlacedObject(shape, colour, extent, angle, x, y)
                for (shape, colour, _), extent, angle, (x, y) in zip(specs, extents_now, angles, spots)
            ]
        scale *= 0.9
    raise AssertionError("unreachable: the last round accepts overlaps")


def _pair(rng, size, dims):
    """Two boxes, whole-pixel corners: any two disjoint boxes lie apart along x or y, so pick a
    feasible axis and an order along it, then positions; None if they cannot fit 1 px apart."""
    footprints = [(math.ceil(w), math.ceil(h)) for w, h in dims]
    (w0, h0), (w1, h1) = footprints
    axes = [axis for axis, need in enumerate((w0 + w1 + 1, h0 + h1 + 1)) if need <= size - 2]
    if not axes:
        return None
    u = rng.random(6).tolist()
    axis = axes[int(u[0] * len(axes))]
    first, second = (1, 0) if u[1] < 0.5 else (0, 1)
    a, b = footprints[first][axis], footprints[second][axis]
    lo = 1 + int(u[2] * (size - 2 - a - b))  # first starts in [1, size - 2 - a - b]
    hi = lo + a + 1 + int(u[3] * (size - 1 - b - (lo + a + 1) + 1))  # second: up to size - 1 - b
    spots = [[0.0, 0.0], [0.0, 0.0]]
    spots[first][axis], spots[second][axis] = float(lo), float(hi)
    for i, v in ((0, u[4]), (1, u[5])):
        across = footprints[i][1 - axis]
        spots[i][1 - axis] = float(1 + int(v * max(size - 1 - across, 1)))
    return [tuple(spot) for spot in spots]


def _scatter(rng, size, dims, overlap_ok: bool):
    """Up to 32 random whole-pixel spots per box, first one 1 px from all earlier boxes wins."""
    spots, taken = [], []
    for w, h in dims:
        slots_x, slots_y = math.floor(max(size - 2 - w, 0.0)) + 1, math.floor(max(size - 2 - h, 0.0)) + 1
        candidates = rng.random(64).tolist()
        for i in range(0, 64, 2):
            x, y = 1.0 + math.floor(candidates[i] * slots_x), 1.0 + math.floor(candidates[i + 1] * slots_y)
            box = (x, y, x + w, y + h)
            if overlap_ok or all(_apart(box, other) for other in taken):
                break
        else:
            return None
        spots.append((x, y))
        taken.append(box)
    return spots


def _apart(a, b, gap: float = 1.0) -> bool:
    """Are boxes (x0, y0, x1, y1) a and b at least `gap` apart along some axis?"""
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


# ---------------------------------------------------------------------------------------------
# Sprites: antialiased coverage crops.


def _supersample(size: int) -> int:
    return 4 if size <= 64 else 2 if size <= 256 else 1


_SPRITE_CACHE_BYTES = 64 << 20  # per process and image size


@lru_cache(maxsize=4)
def _sprite_cache(size: int):
    """`_sprite`, memoised with as many entries as fit the byte budget at this image size."""
    typical = 4 * (0.6 * size) ** 2
    return lru_cache(maxsize=max(256, int(_SPRITE_CACHE_BYTES / typical)))(_sprite)


def _sprite(shape: str, extent: float, angle: float, fx: float, fy: float, f: int, stroke: float):
    """Coverage in [0, 1] of the shape whose box starts at (1 + fx, 1 + fy) in a crop with a 1 px
    border, plus the tight [x0, y0, x1, y1) box of its pixels above 0.5. With `stroke`, the
    coverage of a line that many px wide just inside the outline instead of the filled shape."""
    x0, y0, x1, y1 = _outline_box(shape, extent, angle)
    w, h = math.ceil(fx + x1 - x0) + 2, math.ceil(fy + y1 - y0) + 2
    shift = np.array([1 + fx - x0, 1 + fy - y0])
    canvas = Image.new("L", (w * f, h * f), 0)
    draw = ImageDraw.Draw(canvas)
    for ring, hole in outline(shape, extent, angle):
        xy = ((ring + shift + 0.5) * f - 0.5).ravel().tolist()
        if stroke:
            draw.polygon(xy, outline=255, width=max(1, round(stroke * f)))
        else:
            draw.polygon(xy, fill=0 if hole else 255)
    alpha = np.asarray(canvas.reduce(f), dtype=np.float32) / 255.0
    alpha.setflags(write=False)
    rows, cols = np.flatnonzero((alpha > 0.5).any(axis=1)), np.flatnonzero((alpha > 0.5).any(axis=0))
    box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1) if rows.size else (0, 0, 0, 0)
    return alpha, box


@dataclass(frozen=True)
class _Layer:
    """A sprite where it sits: crop `alpha` with its top-left pixel at (ox, oy) of the image."""

    alpha: np.ndarray
    ox: int
    oy: int
    box: tuple[int, int, int, int]

    def region(self, image: np.ndarray, dx: int = 0, dy: int = 0):
        """(view of image under the crop moved by dx, dy; slices of the crop that land inside)."""
        h, w = self.alpha.shape
        ox, oy = self.ox + dx, self.oy + dy
        x0, y0 = max(ox, 0), max(oy, 0)
        x1, y1 = min(ox + w, image.shape[1]), min(oy + h, image.shape[0])
        return image[y0:y1, x0:x1], (slice(y0 - oy, y1 - oy), slice(x0 - ox, x1 - ox))


def _layer(obj: PlacedObject, size: int, stroke: float = 0.0) -> _Layer:
    """The object's sprite (filled, or with `stroke` its outline) placed on the image."""
    ix, iy = math.floor(obj.x), math.floor(obj.y)
    alpha, box = _sprite_cache(size)(obj.shape, obj.extent, obj.angle, obj.x - ix, obj.y - iy, _supersample(size), stroke)
    return _Layer(alpha, ix - 1, iy - 1, box)


# ---------------------------------------------------------------------------------------------
# Textures: random crops, flips and transposes of a few tiles made once per process.

_BANK_TILES = 6


@lru_cache(maxsize=4)
def _bank(size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240611)
    big = 2 * size + 8

    def smooth(cells: tuple[int, int], channels: int) -> np.ndarray:
        coarse = rng.uniform(0, 255, (*cells, channels)).astype(np.uint8)
        image = Image.fromarray(coarse[..., 0] if channels == 1 else coarse)
        return np.asarray(image.resize((big, big), Image.BICUBIC), dtype=np.float32) / 127.5 - 1.0

    streak_cells = (max(4, size // 3) * 2, 6)  # long along x, short along y
    return {
        "blotch": np.stack([smooth((8, 8), 3) for _ in range(_BANK_TILES)]),  # painting canvas colour
        "patch": np.stack([smooth((12, 12), 1) for _ in range(_BANK_TILES)]),  # uneven paint in a shape
        "streak": np.stack([smooth(streak_cells, 1) for _ in range(_BANK_TILES)]),  # brush strokes
        "grain": rng.normal(0.0, 1.0, (_BANK_TILES, big, big, 3)).astype(np.float32),  # sensor / paper
    }


def _texture(rng: np.random.Generator, size: int, kind: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A random h×w crop of one of the bank's tiles at this scale; h and w may be up to twice `size`."""
    tiles = _bank(size)[kind]
    h, w = shape or (size, size)
    u = rng.random(5).tolist()
    room = min(size, tiles.shape[1] - max(h, w) + 1)  # square canvases: `size` offsets, as ever
    k, oy, ox, flip, transpose = (int(v * m) for v, m in zip(u, (len(tiles), room, room, 4, 2)))
    if transpose:
        h, w = w, h
    tile = tiles[k, oy : oy + h, ox : ox + w]
    if flip & 1:
        tile = tile[::-1]
    if flip & 2:
        tile = tile[:, ::-1]
    return tile.swapaxes(0, 1) if transpose else tile


@lru_cache(maxsize=8)
def _hatch(size: int) -> np.ndarray:
    """Two diagonal hatchings (/ and \\) as coverage weights: dense on the lines, light between; 2·size square,
    so any canvas up to twice the scale is a slice of it."""
    ys, xs = np.mgrid[0 : 2 * size, 0 : 2 * size].astype(np.float32)
    period = 3.0 * max(size / 32, 1)
    return np.stack(
        [np.where((p - np.floor(p)) < 0.4, 0.8, 0.28).astype(np.float32) for p in ((xs + ys) / period, (xs - ys) / period)]
    )


_COLOUR_ARRAYS = {name: np.asarray(rgb, dtype=np.float32) for name, rgb in COLOUR_RGB.items()}
_INK = np.float32([25, 25, 30])


def _muted(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """A background colour halfway to grey, so the objects' colours stay the most saturated thing."""
    r, g, b = rng.uniform(low, high, 3).tolist()
    grey = (r + g + b) / 6
    return np.float32([r / 2 + grey, g / 2 + grey, b / 2 + grey])


def _object_colour(rng: np.random.Generator, name: str) -> np.ndarray:
    return _COLOUR_ARRAYS[name] + rng.uniform(-12, 12, 3).astype(np.float32)


def _paint(view: np.ndarray, colour, alpha: np.ndarray) -> None:
    """view ← view·(1−α) + colour·α, in place; colour is an RGB triple or a field shaped like view."""
    view -= (view - colour) * alpha[..., None]


def _paint_layer(image: np.ndarray, layer: _Layer, colour, weight: float | np.ndarray = 1.0) -> None:
    view, crop = layer.region(image)
    colour = colour[crop] if getattr(colour, "ndim", 1) == 3 else colour
    alpha = layer.alpha[crop] if np.isscalar(weight) and weight == 1.0 else layer.alpha[crop] * weight
    _paint(view, colour, alpha)


# ---------------------------------------------------------------------------------------------
# Styles: each paints a background, then every object in order.


def _photo(rng, size, canvas, objects, layers):
    # Smooth two-colour gradient; every object casts a soft shadow and is lit from one side.
    direction, light = (int(v * _DIRECTIONS) for v in rng.random(2).tolist())
    top, bottom = _muted(rng, 70, 210), _muted(rng, 70, 210)
    height, width = canvas
    image = top + (bottom - top) * (0.5 + _ramp(canvas, direction) * (1.0 / max(canvas)))
    shift = max(1, size // 32)
    lit = _ramp(canvas, light)
    for obj, layer in zip(objects, layers):
        view, crop = layer.region(image, shift, shift)
        view *= 1.0 - 0.35 * layer.alpha[crop][..., None]
        # Brightness falls by 45% across the object, away from the light.
        h, w = layer.alpha.shape
        along, _ = layer.region(lit)
        centre = lit[min(layer.oy + h // 2, height - 1), min(layer.ox + w // 2, width - 1)]
        shade = 1.0 - (0.45 / max(h, w, 2)) * (along - centre)
        view, crop = layer.region(image)
        _paint(view, _object_colour(rng, obj.colour) * shade, layer.alpha[crop])
    image += 4.0 * _texture(rng, size, "grain", canvas)
    return image


_DIRECTIONS = 16


@lru_cache(maxsize=64)
def _ramp(canvas: tuple[int, int], direction: int) -> np.ndarray:
    """Signed distance in px from the image centre along one of `_DIRECTIONS` directions, height×width×1."""
    angle = 2 * math.pi * direction / _DIRECTIONS
    height, width = canvas
    ys = np.arange(height, dtype=np.float32)[:, None] - (height - 1) / 2
    xs = np.arange(width, dtype=np.float32)[None, :] - (width - 1) / 2
    ramp = (xs * math.cos(angle) + ys * math.sin(angle)).astype(np.float32)[..., None]
    ramp.setflags(write=False)
    return ramp


def _cartoon(rng, size, canvas, objects, layers):
    # Flat pale background, flat fill, thick dark outline.
    image = np.empty((*canvas, 3), np.float32)
    image[:] = rng.uniform(205, 250, 3)
    for obj, layer in zip(objects, layers):
        _paint_layer(image, layer, _object_colour(rng, obj.colour))
        _paint_layer(image, _layer(obj, size, stroke=_outline_width(obj, size)), _INK)
    return image


def _outline_width(obj: PlacedObject, size: int) -> float:
    """A cartoon outline ~9% of the object's extent, 0.8-1.25 px at 32 px, on a quarter-pixel grid."""
    width = min(1.25 * size / 32, max(0.8 * size / 32, 0.09 * obj.extent))
    return round(width * 4) / 4


def _sketch(rng, size, canvas, objects, layers):
    # Paper; coloured-pencil hatching inside each shape, then two loose graphite outlines.
    image = np.empty((*canvas, 3), np.float32)
    image[:] = rng.uniform(236, 252) + np.float32([2.0, 0.0, -6.0])
    hatch = _hatch(size)[int(rng.random() * 2), : canvas[0], : canvas[1]]
    grey = rng.uniform(40, 90)
    pencil = np.float32([grey, grey, grey])
    width = 0.8 * size / 32
    for obj, layer in zip(objects, layers):
        view, crop = layer.region(image)
        _paint(view, _object_colour(rng, obj.colour), layer.alpha[crop] * layer.region(hatch)[0])
        stroke = _layer(obj, size, stroke=width)
        _paint_layer(image, stroke, pencil, 0.95)
        # A second, lighter pass 1 px off, as a loose hand retraces a line.
        dx, dy = _NUDGES[int(rng.random() * len(_NUDGES))]
        view, crop = stroke.region(image, dx, dy)
        _paint(view, pencil, stroke.alpha[crop] * 0.45)
    image += 2.5 * _texture(rng, size, "grain", canvas)[..., :1]
    return image


_NUDGES = ((1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, -1))


def _painting(rng, size, canvas, objects, layers):
    # Blotchy, streaky canvas; shapes filled with uneven, brushed paint.
    image = _muted(rng, 70, 200) + 22.0 * _texture(rng, size, "blotch", canvas) + 14.0 * _texture(rng, size, "streak", canvas)[..., None]
    for obj, layer in zip(objects, layers):
        shape = layer.alpha.shape
        variation = 1.0 + 0.2 * _texture(rng, size, "patch", shape) + 0.12 * _texture(rng, size, "streak", shape)
        _paint_layer(image, layer, _object_colour(rng, obj.colour) * variation[..., None])
    return image


_STYLE_PAINTERS = {"photo": _photo, "cartoon": _cartoon, "sketch": _sketch, "painting": _painting}


# ---------------------------------------------------------------------------------------------
# Entry points.


def render(
    rng: np.random.Generator, size: int, style: str, objects: list[PlacedObject], canvas: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray, list]:
    """Paint `objects` in `style`. Returns (RGB uint8 image, uint8 mask with i+1 on object i, boxes).

    `size` is the scale (object sizes, stroke widths, textures: the side objects were placed in); the
    image is `canvas` = (height, width), default size×size, each side at most twice `size`.
    Box i is the tight [x0, y0, x1, y1) pixel box (x1, y1 exclusive) of object i's coverage above
    0.5, the same pixels its mask label is written to (a later object may overwrite some).
    """
    canvas = canvas or (size, size)
    if max(canvas) > 2 * size or min(canvas) < 1:
        raise ValueError(f"canvas {canvas} must lie between 1 and twice the scale {size}")
    layers = [_layer(obj, size) for obj in objects]
    image = _STYLE_PAINTERS[style](rng, size, canvas, objects, layers)
    height, width = canvas
    mask = np.zeros(canvas, np.uint8)
    boxes = []
    for i, layer in enumerate(layers):
        view, crop = layer.region(mask)
        view[layer.alpha[crop] > 0.5] = i + 1
        x0, y0, x1, y1 = layer.box
        boxes.append(
            [max(x0 + layer.ox, 0), max(y0 + layer.oy, 0), min(x1 + layer.ox, width), min(y1 + layer.oy, height)]
        )
    return np.clip(image, 0, 255).astype(np.uint8), mask, boxes


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes (RGB for H×W×3 uint8, greyscale for H×W) that any decoder reads.

    Written directly with zlib (level 1, PNG "sub" filter on every row): at 32×32, PIL's encoder
    spends ~4× longer, mostly in per-call overhead, which was a third of the sample's budget.
    """
    h, w = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    rows = np.ascontiguousarray(array, dtype=np.uint8).reshape(h, w * channels)
    raw = np.empty((h, w * channels + 1), np.uint8)
    raw[:, 0] = 1  # filter "sub": each byte minus the same channel of the pixel to its left
    raw[:, 1:] = rows
    raw[:, 1 + channels :] -= rows[:, :-channels]
    header = struct.pack(">IIBBBBB", w, h, 8, 0 if channels == 1 else 2, 0, 0, 0)
    idat = zlib.compress(raw.tobytes(), PNG_COMPRESS_LEVEL)
    return b"".join([b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", header), _chunk(b"IDAT", idat), _chunk(b"IEND", b"")])


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
