"""The shapes generator: deterministic samples, consistent labels, and readable webdataset shards."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlp.workloads.data import shapes
from vlp.workloads.data.shapes import (
    COLOURS,
    SHAPES,
    SIZES,
    STYLES,
    ShapesParams,
    ShapesParamsError,
    caption_for,
    generate_shapes,
    render_sample,
)


def _png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _words(caption: str) -> set[str]:
    return set(re.findall(r"[a-z]+", caption))


def test_class_lists():
    assert len(SHAPES) >= 8 and len(set(SHAPES)) == len(SHAPES)
    assert len(COLOURS) >= 8 and len(set(COLOURS)) == len(COLOURS)
    assert SIZES == ("small", "large")
    assert STYLES == ("photo", "cartoon", "sketch", "painting")


def test_sample_fields_and_images():
    params = ShapesParams(samples=50, seed=3, image_size=32, max_objects=3)
    for index in range(50):
        sample = render_sample(params, index)
        assert sample["__key__"] == f"{index:08d}"
        image, mask = _png(sample["png"]), _png(sample["mask.png"])
        assert (image.mode, image.size) == ("RGB", (32, 32))
        assert (mask.mode, mask.size) == ("L", (32, 32))
        meta = sample["json"]
        assert set(meta) == {"shape", "colour", "style", "size", "objects", "caption_clean", "noisy", "questions", "refexps"}
        assert 1 <= len(meta["objects"]) <= 3
        first = meta["objects"][0]
        assert (meta["shape"], meta["colour"], meta["size"]) == (first["shape"], first["colour"], first["size"])
        # The label object is the first large one when there is one.
        if any(o["size"] == "large" for o in meta["objects"]):
            assert meta["size"] == "large"
        assert meta["style"] in STYLES
        assert meta["noisy"] is False and sample["txt"] == meta["caption_clean"]
        assert np.asarray(mask).max() <= len(meta["objects"])


def test_render_sample_is_deterministic_and_seeded():
    params = ShapesParams(samples=20, seed=11)
    for index in (0, 7, 19):
        assert render_sample(params, index) == render_sample(params, index)
    other = ShapesParams(samples=20, seed=12)
    assert [render_sample(params, i)["png"] for i in range(20)] != [render_sample(other, i)["png"] for i in range(20)]
    assert len({render_sample(params, i)["png"] for i in range(20)}) == 20


def test_masks_lie_inside_boxes():
    params = ShapesParams(samples=200, seed=5, max_objects=3)
    labelled = total = 0
    for index in range(200):
        sample = render_sample(params, index)
        mask = np.asarray(_png(sample["mask.png"]))
        total += len(sample["json"]["objects"])
        for i, obj in enumerate(sample["json"]["objects"]):
            x0, y0, x1, y1 = obj["box"]
            assert 0 <= x0 < x1 <= 32 and 0 <= y0 < y1 <= 32
            ys, xs = np.nonzero(mask == i + 1)
            if xs.size:
                labelled += 1
                assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1
    assert labelled >= 0.99 * total  # objects are placed apart, so (almost) none is hidden


def test_sizes_are_clearly_different():
    params = ShapesParams(samples=200, seed=2, max_objects=1)
    extents = {"small": [], "large": []}
    for index in range(200):
        obj = render_sample(params, index)["json"]["objects"][0]
        x0, y0, x1, y1 = obj["box"]
        extents[obj["size"]].append(max(x1 - x0, y1 - y0))
    assert max(extents["small"]) < min(extents["large"])


def test_partial_captions_keep_the_shape_word():
    params = ShapesParams(samples=300, seed=4, partial_caption_rate=1.0, max_objects=2)
    modes = set()
    for index in range(300):
        sample = render_sample(params, index)
        words = _words(sample["txt"])
        objects = sample["json"]["objects"]
        assert all(o["shape"] in words for o in objects), sample["txt"]
        has_colour, has_size = bool(words & set(COLOURS)), bool(words & set(SIZES))
        assert not (has_colour and has_size), sample["txt"]
        modes.add((has_colour, has_size))
    assert modes == {(True, False), (False, True), (False, False)}


def test_caption_rates_never_change_pictures():
    base = ShapesParams(samples=50, seed=13)
    others = (ShapesParams(samples=50, seed=13, partial_caption_rate=1.0), ShapesParams(samples=50, seed=13, caption_noise_rate=1.0))
    for other in others:
        for index in range(50):
            a, b = render_sample(base, index), render_sample(other, index)
            assert (a["png"], a["mask.png"], a["json"]["objects"]) == (b["png"], b["mask.png"], b["json"]["objects"])


def test_full_captions_name_every_attribute():
    params = ShapesParams(samples=100, seed=4, partial_caption_rate=0.0, max_objects=2)
    for index in range(100):
        sample = render_sample(params, index)
        words = _words(sample["txt"])
        for obj in sample["json"]["objects"]:
            assert {obj["shape"], obj["colour"], obj["size"]} <= words, sample["txt"]


def test_style_is_named_in_a_minority_of_captions():
    params = ShapesParams(samples=1000, seed=8)
    named = sum(
        bool({"cartoon", "sketch", "painting", "style"} & _words(caption_for(params, i))) for i in range(1000)
    )
    # ~20% of captions name a style; "photo" is left out because "a photo of" is also a neutral template.
    assert 0.08 < named / 1000 < 0.25


def test_caption_noise_rate_and_flag():
    clean = ShapesParams(samples=1000, seed=9, caption_noise_rate=0.0)
    noisy = ShapesParams(samples=1000, seed=9, caption_noise_rate=0.3)
    flagged = 0
    for index in range(1000):
        sample = render_sample(noisy, index)
        meta = sample["json"]
        assert meta["caption_clean"] == caption_for(noisy, index)
        if meta["noisy"]:
            flagged += 1
            assert sample["txt"] != meta["caption_clean"]
        else:
            assert sample["txt"] == meta["caption_clean"]
        if index < 100:  # the noise rate changes captions, never pictures
            assert sample["png"] == render_sample(clean, index)["png"]
    assert abs(flagged / 1000 - 0.3) <= 0.07


def test_every_style_appears_and_looks_different():
    params = ShapesParams(samples=320, seed=6, max_objects=1)
    background_spread = {style: [] for style in STYLES}
    for index in range(320):
        sample = render_sample(params, index)
        image = np.asarray(_png(sample["png"]), dtype=np.float32)
        mask = np.asarray(_png(sample["mask.png"]))
        near = mask > 0
        near = near | np.roll(near, 1, 0) | np.roll(near, -1, 0)
        near = near | np.roll(near, 1, 1) | np.roll(near, -1, 1)  # edges are antialiased: skip them
        background = image[~near]
        background_spread[sample["json"]["style"]].append(background.std(axis=0).mean())
    assert all(len(v) > 40 for v in background_spread.values())
    spread = {style: float(np.median(v)) for style, v in background_spread.items()}
    # Cartoons are flat (outline aside), sketches are paper, photos have gradients, paintings blotches.
    assert spread["cartoon"] < 1 and spread["sketch"] < 5
    assert spread["photo"] > 6 and spread["painting"] > 8
    sketch_light = np.median(
        [np.asarray(_png(render_sample(ShapesParams(samples=5, seed=1, styles=("sketch",)), i)["png"])).mean() for i in range(5)]
    )
    assert sketch_light > 200


def test_params_are_checked():
    with pytest.raises(ShapesParamsError, match="styles"):
        ShapesParams(samples=10, seed=0, styles=("oil",))
    with pytest.raises(ShapesParamsError, match="min_objects"):
        ShapesParams(samples=10, seed=0, min_objects=3, max_objects=2)
    with pytest.raises(ShapesParamsError, match="caption_noise_rate"):
        ShapesParams(samples=10, seed=0, caption_noise_rate=1.5)
    assert ShapesParams(samples=10, seed=0, styles=["sketch"]).styles == ("sketch",)


def test_tar_matches_webdataset_tarwriter():
    webdataset = pytest.importorskip("webdataset")
    params = ShapesParams(samples=5, seed=0)
    samples = [render_sample(params, i) for i in range(5)]
    buffer = io.BytesIO()
    with webdataset.TarWriter(buffer, encoder=False, mtime=0) as writer:
        for sample in samples:
            writer.write({**sample, "txt": sample["txt"].encode(), "json": json.dumps(sample["json"], sort_keys=True).encode()})
    assert shapes._tar_bytes(samples) == buffer.getvalue()


def test_generate_writes_shards_then_manifest(tmp_path, monkeypatch):
    writes: list[str] = []
    real_open_storage = shapes.open_storage

    class Recording:
        def __init__(self, inner):
            self.inner = inner

        def write_bytes(self, uri, data):
            writes.append(uri)
            self.inner.write_bytes(uri, data)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    monkeypatch.setattr(shapes, "open_storage", lambda uri: Recording(real_open_storage(uri)))
    out = str(tmp_path / "ds")
    progress: list[int] = []
    params = ShapesParams(samples=250, seed=1, shard_size=100, caption_noise_rate=0.1)
    manifest = generate_shapes(params, out, processes=1, on_progress=progress.append)

    names = ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert writes == [f"{out}/{n}" for n in names] + [f"{out}/manifest.json"]
    assert progress == [100, 200, 250]
    assert json.loads((tmp_path / "ds" / "manifest.json").read_text()) == manifest
    assert manifest["format"] == "vlp-shapes/1"
    assert manifest["shards"] == names and manifest["shard_sizes"] == [100, 100, 50]
    assert (manifest["samples"], manifest["seed"], manifest["image_size"]) == (250, 1, 32)
    assert manifest["classes"]["shape"] == list(SHAPES) and manifest["classes"]["colour"] == list(COLOURS)
    assert manifest["domains"] == list(STYLES)
    assert (manifest["caption_noise_rate"], manifest["partial_caption_rate"]) == (0.1, 0.5)
    assert (manifest["min_objects"], manifest["max_objects"]) == (1, 2)
    assert manifest["seconds"] > 0 and manifest["samples_per_second"] > 0

    with tarfile.open(tmp_path / "ds" / names[2]) as tar:
        members = tar.getnames()
    assert members[:4] == ["00000200.json", "00000200.mask.png", "00000200.png", "00000200.txt"]
    assert len(members) == 4 * 50


def test_shards_read_with_webdataset_and_do_not_depend_on_process_count(tmp_path):
    webdataset = pytest.importorskip("webdataset")
    params = ShapesParams(samples=240, seed=21, shard_size=60)
    one, two = tmp_path / "one", tmp_path / "two"
    first = generate_shapes(params, str(one), processes=1)
    second = generate_shapes(params, str(two), processes=2)
    assert first["shards"] == second["shards"]
    for name in first["shards"]:
        assert (one / name).read_bytes() == (two / name).read_bytes()

    urls = [str(two / name) for name in second["shards"]]
    seen = []
    for sample in webdataset.WebDataset(urls, shardshuffle=False):
        assert {"png", "mask.png", "txt", "json"} <= set(sample)
        meta = json.loads(sample["json"])
        expected = render_sample(params, int(sample["__key__"]))
        assert meta == expected["json"]
        assert sample["txt"].decode() == expected["txt"]
        assert sample["png"] == expected["png"] and sample["mask.png"] == expected["mask.png"]
        seen.append(int(sample["__key__"]))
    assert seen == list(range(240))


def test_local_uri_with_nested_folder_and_regeneration(tmp_path: Path, monkeypatch):
    out = tmp_path / "a" / "b"
    manifest = generate_shapes(ShapesParams(samples=3, seed=0), str(out), processes=4)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "shard-000000.tar"]
    assert manifest["shard_sizes"] == [3]

    # Regenerating in place removes the old manifest before the first shard is rewritten.
    seen = []
    monkeypatch.setattr(shapes, "_write_shard", lambda job: seen.append((out / "manifest.json").exists()) or 2)
    generate_shapes(ShapesParams(samples=2, seed=1), str(out), processes=1)
    assert seen == [False] and json.loads((out / "manifest.json").read_text())["seed"] == 1


def test_aspect_ratio_jitter_keeps_masks_and_boxes_on_the_rendered_image():
    params = ShapesParams(samples=60, seed=4, image_size=48, max_aspect_ratio=1.75, max_objects=3)
    orientations, long_sides = set(), set()
    for index in range(60):
        sample = render_sample(params, index)
        image, mask = _png(sample["png"]), _png(sample["mask.png"])
        width, height = image.size
        assert mask.size == image.size and min(width, height) == 48 and 48 <= max(width, height) <= 84
        orientations.add(width > height)
        long_sides.add(max(width, height))
        mask_pixels = np.asarray(mask)
        # The shapes sit in the centred 48 px square, so a centre crop (evaluation's) keeps every one.
        left, top = (width - 48) // 2, (height - 48) // 2
        for i, obj in enumerate(sample["json"]["objects"]):
            x0, y0, x1, y1 = obj["box"]
            assert left <= x0 < x1 <= left + 48 and top <= y0 < y1 <= top + 48
            ys, xs = np.nonzero(mask_pixels == i + 1)
            if xs.size:
                assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1
        assert render_sample(params, index) == sample
    assert orientations == {True, False} and len(long_sides) > 15


def test_jpeg_output_shows_the_same_scene_as_png():
    png = ShapesParams(samples=12, seed=9, image_size=96, max_aspect_ratio=1.5)
    jpg = ShapesParams(samples=12, seed=9, image_size=96, max_aspect_ratio=1.5, image_format="jpg", jpeg_quality=90)
    for index in range(12):
        lossless, lossy = render_sample(png, index), render_sample(jpg, index)
        assert "png" not in lossy and lossy["jpg"][:2] == b"\xff\xd8"
        assert {k: v for k, v in lossless.items() if k != "png"} == {k: v for k, v in lossy.items() if k != "jpg"}
        decoded = np.asarray(Image.open(io.BytesIO(lossy["jpg"])).convert("RGB"), dtype=np.float32)
        assert decoded.shape == np.asarray(_png(lossless["png"])).shape
        # Grain noise is what JPEG loses most; a different scene would differ by tens of levels.
        assert np.abs(decoded - np.asarray(_png(lossless["png"]), dtype=np.float32)).mean() < 6.0
        assert render_sample(jpg, index)["jpg"] == lossy["jpg"]


def test_real_size_params_are_checked():
    with pytest.raises(ShapesParamsError, match="image_size must be in"):
        ShapesParams(samples=10, seed=0, image_size=1024)
    with pytest.raises(ShapesParamsError, match="max_aspect_ratio"):
        ShapesParams(samples=10, seed=0, max_aspect_ratio=2.5)
    with pytest.raises(ShapesParamsError, match="image_format must be one of png, jpg"):
        ShapesParams(samples=10, seed=0, image_format="gif")
    with pytest.raises(ShapesParamsError, match="jpeg_quality"):
        ShapesParams(samples=10, seed=0, image_format="jpg", jpeg_quality=100)


def test_jpeg_shards_are_read_by_vlps_shard_reader(tmp_path):
    from vlp.workloads.data.readers import open_source

    params = ShapesParams(samples=30, seed=2, image_size=64, max_aspect_ratio=2.0, image_format="jpg", shard_size=16, max_objects=1)
    generate_shapes(params, str(tmp_path / "ds"), processes=1)
    with tarfile.open(tmp_path / "ds" / "shard-000000.tar") as tar:
        assert tar.getnames()[:4] == ["00000000.jpg", "00000000.json", "00000000.mask.png", "00000000.txt"]
    records = list(open_source(str(tmp_path / "ds")).read())
    assert [record.key for record in records] == [f"{i:08d}" for i in range(30)]
    assert all(Image.open(io.BytesIO(record.image)).format == "JPEG" for record in records)
    assert records[3].label == render_sample(params, 3)["json"]["shape"]
