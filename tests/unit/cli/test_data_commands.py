"""`vlp data make shapes` at real size: JPEG images of varied aspect ratios; bad options exit 2 writing nothing."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile

from PIL import Image
from services import VLP


def vlp(*args, cwd):
    return subprocess.run([VLP, *args], env={**os.environ}, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_make_shapes_writes_jpeg_images_of_varied_aspect_ratios(tmp_path):
    out = tmp_path / "photos"
    result = vlp("data", "make", "shapes", "--out", str(out), "--samples", "40", "--image-size", "64", "--max-aspect-ratio", "2",
                 "--format", "jpg", "--jpeg-quality", "80", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert (manifest["image_format"], manifest["max_aspect_ratio"], manifest["image_size"]) == ("jpg", 2.0, 64)
    with tarfile.open(out / "shard-000000.tar") as archive:
        sizes = {Image.open(io.BytesIO(archive.extractfile(member).read())).size for member in archive if member.name.endswith(".jpg")}
    assert min(min(size) for size in sizes) == 64 and max(max(size) for size in sizes) <= 128 and len(sizes) > 10


def test_make_shapes_refuses_an_unknown_format_before_writing(tmp_path):
    result = vlp("data", "make", "shapes", "--out", str(tmp_path / "never"), "--samples", "10", "--format", "gif", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["vlp: error: shapes: image_format must be one of png, jpg (got 'gif')"]
    assert not (tmp_path / "never").exists()
