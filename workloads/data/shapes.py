"""Shapes: a procedural image–text dataset with labels, boxes, masks and render styles as domains.

Every sample is a pure function of `(seed, index)`: one `np.random.default_rng([seed, index])`
stream draws first a fixed-length block (caption coin flips, object count, shapes, colours, size
words, style, caption template), then layout and pixels. The block's length depends only on
`max_objects`, so a caption can be recomputed without rendering (that is how caption noise
borrows another sample's caption), and the rates only change captions: `caption_noise_rate`
never touches a picture or a clean caption, `partial_caption_rate` never touches a picture.

`generate_shapes` writes webdataset tar shards (`shard-000000.tar`, …) in parallel and the
`manifest.json` last, so a reader may treat the manifest as "dataset complete".
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import multiprocessing
import os
import tarfile
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
from PIL import Image

from vlp.platform.errors import VlpUserError
from vlp.platform.storage import join, open_storage
from vlp.workloads.data import shapes_language, shapes_render
from vlp.workloads.data.shapes_render import COLOUR_RGB, SHAPES, STYLES

COLOURS: tuple[str, ...] = tuple(COLOUR_RGB)
SIZES: tuple[str, ...] = ("small", "large")
FORMAT = "vlp-shapes/1"
MANIFEST = "manifest.json"
MAX_IMAGE_SIZE = 512
MAX_ASPECT_RATIO = 2.0  # the renderer's textures cover canvases up to twice the scale
IMAGE_FORMATS = ("png", "jpg")

__all__ = [
    "SHAPES", "COLOURS", "COLOUR_RGB", "SIZES", "STYLES", "FORMAT", "MANIFEST",
    "ShapesParams", "ShapesParamsError", "render_sample", "caption_for", "generate_shapes", "shard_name",
]


class ShapesParamsError(VlpUserError, ValueError):
    """Parameters for the shapes generator that cannot produce a dataset."""


@dataclass(frozen=True)
class ShapesParams:
    """What to generate. Two datasets with equal params are byte-identical."""

    samples: int
    """Number of image–text pairs."""
    seed: int
    """Seed; sample i depends only on (seed, i)."""
    image_size: int = 32
    """Side of the square RGB images in pixels; with `max_aspect_ratio` above 1, the shorter side."""
    max_aspect_ratio: float = 1.0
    """Each image's longer side is `image_size` times a ratio drawn uniformly from [1, this], landscape or portrait
    by a coin (1: square images). The shapes stay in the centred `image_size` square, so a centre crop keeps them."""
    image_format: str = "png"
    """`png` (lossless, entry `png`) or `jpg` (JPEG at `jpeg_quality`, entry `jpg`, as img2dataset writes photos).
    Masks are PNG either way."""
    jpeg_quality: int = 90
    """JPEG quality (1-95) when `image_format` is `jpg`."""
    min_objects: int = 1
    """Fewest shapes in one image."""
    max_objects: int = 2
    """Most shapes in one image (the first-mentioned, largest one gives the class label)."""
    styles: tuple[str, ...] = STYLES
    """Render styles (domains) to draw from, uniformly: any of photo, cartoon, sketch, painting."""
    partial_caption_rate: float = 0.5
    """Share of captions that drop the colour words, the size words, or both (the shape word stays)."""
    caption_noise_rate: float = 0.0
    """Share of samples whose caption is replaced by another sample's caption (marked noisy)."""
    shard_size: int = 2000
    """Samples per tar shard."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "styles", tuple(self.styles))
        problems = []
        if self.samples < 1:
            problems.append(f"samples must be >= 1 (got {self.samples})")
        if not 16 <= self.image_size <= MAX_IMAGE_SIZE:
            problems.append(f"image_size must be in [16, {MAX_IMAGE_SIZE}] (got {self.image_size})")
        if not 1.0 <= self.max_aspect_ratio <= MAX_ASPECT_RATIO:
            problems.append(f"max_aspect_ratio must be in [1, {MAX_ASPECT_RATIO}] (got {self.max_aspect_ratio})")
        if self.image_format not in IMAGE_FORMATS:
            problems.append(f"image_format must be one of {', '.join(IMAGE_FORMATS)} (got {self.image_format!r})")
        if not 1 <= self.jpeg_quality <= 95:
            problems.append(f"jpeg_quality must be in [1, 95] (got {self.jpeg_quality})")
        if not 1 <= self.min_objects <= self.max_objects <= 6:
            problems.append(f"need 1 <= min_objects <= max_objects <= 6 (got {self.min_objects}, {self.max_objects})")
        unknown = [s for s in self.styles if s not in STYLES]
        if not self.styles or unknown:
            problems.append(f"styles must be a non-empty subset of {', '.join(STYLES)} (got {list(self.styles)})")
        for name in ("partial_caption_rate", "caption_noise_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1] (got {getattr(self, name)})")
        if self.shard_size < 1:
            problems.append(f"shard_size must be >= 1 (got {self.shard_size})")
        if problems:
            raise ShapesParamsError("shapes: " + "; ".join(problems))


# ---------------------------------------------------------------------------------------------
# Scenes and captions (no pixels).

_NEUTRAL_TEMPLATES = ("{}", "a picture of {}", "an image of {}", "a photo of {}", "there is {}")
_STYLE_TEMPLATES = ("a {style} of {}", "{}, {style} style")
_STYLE_MENTION_RATE = 0.2
_JOINERS = (" and ", " next to ")
_PARTIAL_MODES = ("no_colour", "no_size", "no_colour_no_size")


@dataclass(frozen=True)
class _Scene:
    objects: tuple[tuple[str, str, str], ...]  # (shape, colour, size), largest first
    style: str
    caption_clean: str
    noise_draw: tuple[float, float]  # (coin, which other sample)


def _scene(params: ShapesParams, rng: np.random.Generator) -> _Scene:
    # One fixed-length draw, so where the stream stands afterwards depends on nothing but max_objects.
    u = rng.random(9 + 3 * params.max_objects).tolist()
    partial_coin, partial_mode, noise_coin, noise_pick, style_coin, template_u, joiner_u, count_u, style_u = u[:9]
    n = params.min_objects + int(count_u * (params.max_objects - params.min_objects + 1))
    objects = [
        (SHAPES[int(u[i] * len(SHAPES))], COLOURS[int(u[i + 1] * len(COLOURS))], SIZES[int(u[i + 2] * len(SIZES))])
        for i in range(9, 9 + 3 * n, 3)
    ]
    objects.sort(key=lambda o: o[2] != "large")  # stable: the label object is the first large one
    style = params.styles[int(style_u * len(params.styles))]

    drop = _PARTIAL_MODES[int(partial_mode * 3)] if partial_coin < params.partial_caption_rate else ""
    phrases = [_phrase(shape, colour, size, drop) for shape, colour, size in objects]
    joiner = _JOINERS[int(joiner_u * len(_JOINERS))]
    body = phrases[0] if n == 1 else (", ".join(phrases[:-1]) + joiner + phrases[-1] if n > 2 else joiner.join(phrases))
    if style_coin < _STYLE_MENTION_RATE:
        template = _STYLE_TEMPLATES[int(template_u * len(_STYLE_TEMPLATES))]
        caption = template.format(body, style=style)
    else:
        caption = _NEUTRAL_TEMPLATES[int(template_u * len(_NEUTRAL_TEMPLATES))].format(body)
    return _Scene(tuple(objects), style, caption, (noise_coin, noise_pick))


def _phrase(shape: str, colour: str, size: str, drop: str) -> str:
    words = [w for w, dropped in ((size, "size" in drop), (colour, "colour" in drop)) if not dropped]
    words.append(shape)
    article = "an" if words[0][0] in "aeiou" else "a"
    return " ".join([article, *words])


def caption_for(params: ShapesParams, index: int) -> str:
    """The clean caption of sample `index`, computed without rendering it."""
    return _scene(params, np.random.default_rng([params.seed, index])).caption_clean


def _noisy_caption(params: ShapesParams, index: int, scene: _Scene) -> str | None:
    coin, pick = scene.noise_draw
    if coin >= params.caption_noise_rate:
        return None
    # Another sample's caption; walk on (deterministically) past ones that happen to read the same.
    others = max(params.samples - 1, 1)
    other = (index + 1 + int(pick * others)) % max(params.samples, 2)
    for step in range(8):
        candidate = (other + step) % max(params.samples, 2)
        if candidate == index:
            continue
        caption = caption_for(params, candidate)
        if caption != scene.caption_clean:
            return caption
    return caption


# ---------------------------------------------------------------------------------------------
# Samples.


def render_sample(params: ShapesParams, index: int) -> dict:
    """Sample `index`: {"__key__", "png" or "jpg" (RGB), "mask.png" (L: 0 background, i+1 object i), "txt", "json"}.

    `json` holds shape/colour/size of the first (largest) object, the style, every object with its
    tight [x0, y0, x1, y1) pixel box, the clean caption, whether `txt` was replaced by noise, and
    `questions` and `refexps` about the scene (see `shapes_language`).
    """
    rng = np.random.default_rng([params.seed, index])
    scene = _scene(params, rng)
    noisy_caption = _noisy_caption(params, index, scene)
    # Square datasets draw nothing here, so they stay what they were before aspect ratios existed.
    height, width = _canvas(params, rng) if params.max_aspect_ratio > 1.0 else (params.image_size, params.image_size)
    placed = shapes_render.place(rng, params.image_size, list(scene.objects))
    # The shapes were placed in an image_size square; centre that square on the canvas.
    dx, dy = (width - params.image_size) // 2, (height - params.image_size) // 2
    placed = [dataclasses.replace(obj, x=obj.x + dx, y=obj.y + dy) for obj in placed] if dx or dy else placed
    image, mask, boxes = shapes_render.render(rng, params.image_size, scene.style, placed, (height, width))
    shape, colour, size = scene.objects[0]
    questions, refexps = shapes_language.scene_language(scene.objects, boxes, params.seed, index)
    meta = {
        "shape": shape,
        "colour": colour,
        "size": size,
        "style": scene.style,
        "objects": [
            {"shape": s, "colour": c, "size": z, "box": box} for (s, c, z), box in zip(scene.objects, boxes)
        ],
        "caption_clean": scene.caption_clean,
        "noisy": noisy_caption is not None,
        "questions": questions,
        "refexps": refexps,
    }
    return {
        "__key__": f"{index:08d}",
        params.image_format: _encode(image, params),
        "mask.png": shapes_render.encode_png(mask),
        "txt": noisy_caption if noisy_caption is not None else scene.caption_clean,
        "json": meta,
    }


def _canvas(params: ShapesParams, rng: np.random.Generator) -> tuple[int, int]:
    """(height, width): the short side `image_size`, the long one `image_size` × a ratio in [1, max_aspect_ratio]."""
    ratio_u, landscape_u = rng.random(2).tolist()
    long_side = round(params.image_size * (1.0 + ratio_u * (params.max_aspect_ratio - 1.0)))
    short_side = params.image_size
    return (short_side, long_side) if landscape_u < 0.5 else (long_side, short_side)


def _encode(image: np.ndarray, params: ShapesParams) -> bytes:
    if params.image_format == "png":
        return shapes_render.encode_png(image)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=params.jpeg_quality)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Shards.


def shard_name(shard: int) -> str:
    return f"shard-{shard:06d}.tar"


def _tar_bytes(samples) -> bytes:
    """A webdataset shard: byte for byte what `webdataset.TarWriter(stream, mtime=0)` (tarfile, ustar)
    writes, one member `key.field` per field, fields sorted.

    Headers are stamped from a template because `tarfile` spends ~25 µs building each one (four per
    sample: more than rendering a cartoon); the unit tests compare the bytes with `tarfile`'s. Worker
    processes also need not import webdataset, which pulls in torch (~1.5 s per spawned worker).
    """
    template, base_checksum = _tar_header_template()
    parts = []
    for sample in samples:
        key = sample["__key__"]
        for field in sorted(k for k in sample if k != "__key__"):
            value = sample[field]
            if isinstance(value, dict):
                value = json.dumps(value, sort_keys=True)
            if isinstance(value, str):
                value = value.encode("utf-8")
            parts.append(_tar_header(template, base_checksum, f"{key}.{field}", len(value)))
            parts.append(value)
            if len(value) % tarfile.BLOCKSIZE:
                parts.append(bytes(tarfile.BLOCKSIZE - len(value) % tarfile.BLOCKSIZE))
    parts.append(bytes(2 * tarfile.BLOCKSIZE))  # end-of-archive marker
    size = sum(map(len, parts))
    parts.append(bytes(-size % tarfile.RECORDSIZE))
    return b"".join(parts)


@lru_cache(maxsize=1)
def _tar_header_template() -> tuple[bytes, int]:
    """A ustar header with every field but name, size and checksum filled in, and its checksum
    counting the checksum field as spaces, as the format says."""
    info = tarfile.TarInfo("")
    info.mtime, info.mode, info.uname, info.gname = 0, 0o444, "bigdata", "bigdata"
    header = bytearray(info.tobuf(tarfile.USTAR_FORMAT))
    header[124:136] = bytes(12)
    header[148:156] = b" " * 8
    return bytes(header), sum(header)


def _tar_header(template: bytes, base_checksum: int, name: str, size: int) -> bytes:
    encoded = name.encode("utf-8")
    if len(encoded) > 100:
        raise ValueError(f"tar member name longer than 100 bytes: {name!r}")
    size_field = b"%011o\0" % size
    checksum = base_checksum + sum(encoded) + sum(size_field)
    header = bytearray(template)
    header[: len(encoded)] = encoded
    header[124:136] = size_field
    header[148:155] = b"%06o\0" % checksum
    return bytes(header)


def _write_shard(job: tuple[Callable[[object, int], dict], object, str, int]) -> int:
    """Render and store one shard; returns its sample count. Top-level so spawned workers can run it."""
    render, params, out_uri, shard = job
    start = shard * params.shard_size
    stop = min(start + params.shard_size, params.samples)
    data = _tar_bytes(render(params, i) for i in range(start, stop))
    open_storage(out_uri).write_bytes(join(out_uri, shard_name(shard)), data)
    return stop - start


def write_shards(render: Callable[[object, int], dict], params, out_uri: str, processes: int | None = None,
                 on_progress: Callable[[int], None] | None = None) -> list[int]:
    """Store samples `render(params, i)` for i < `params.samples` as shards of `params.shard_size` and return the
    shard sizes; a manifest left by an earlier run is deleted first (the caller writes the new one last).

    Shards are rendered by a spawn-started process pool (`processes` defaults to the CPU count; 1 renders in this
    process; `render` must be a module-level function) and finish in order; `on_progress(samples_done)` is called
    after each."""
    storage, manifest_uri = open_storage(out_uri), join(out_uri, MANIFEST)
    if storage.exists(manifest_uri):  # regenerating in place: the dataset is incomplete until the end
        storage.delete(manifest_uri)
    n_shards = math.ceil(params.samples / params.shard_size)
    jobs = [(render, params, out_uri, shard) for shard in range(n_shards)]
    workers = max(1, min(processes or os.cpu_count() or 1, n_shards))
    sizes: list[int] = []

    def finished(count: int) -> None:
        sizes.append(count)
        if on_progress is not None:
            on_progress(sum(sizes))

    if workers == 1:
        for job in jobs:
            finished(_write_shard(job))
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for count in pool.imap(_write_shard, jobs, chunksize=1):
                finished(count)
    return sizes


def generate_shapes(
    params: ShapesParams,
    out_uri: str,
    processes: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> dict:
    """Write the dataset to `out_uri` (local path or s3://) and return its manifest.

    Shards are written by `write_shards` (in parallel processes); the manifest is written after every shard is
    stored, so its presence means the dataset is complete.
    """
    started = time.perf_counter()
    sizes = write_shards(render_sample, params, out_uri, processes, on_progress)
    n_shards = len(sizes)
    seconds = time.perf_counter() - started
    manifest = {
        "format": FORMAT,
        "samples": params.samples,
        "seed": params.seed,
        "image_size": params.image_size,
        "max_aspect_ratio": params.max_aspect_ratio,
        "image_format": params.image_format,
        "shards": [shard_name(shard) for shard in range(n_shards)],
        "shard_sizes": sizes,
        "classes": {"shape": list(SHAPES), "colour": list(COLOURS), "size": list(SIZES)},
        "answers": list(shapes_language.ANSWERS),
        "domains": list(params.styles),
        "caption_noise_rate": params.caption_noise_rate,
        "partial_caption_rate": params.partial_caption_rate,
        "min_objects": params.min_objects,
        "max_objects": params.max_objects,
        "seconds": round(seconds, 3),
        "samples_per_second": round(params.samples / seconds, 1) if seconds > 0 else None,
    }
    open_storage(out_uri).write_bytes(join(out_uri, MANIFEST), json.dumps(manifest, indent=2).encode("utf-8"))
    return manifest
