"""The shards every training and data benchmark reads: shapes image-caption pairs laid out as img2dataset writes
them (`key.png` or `key.jpg`, `key.txt`, `key.json` per sample). The generator's segmentation masks are left out: a loader
that decodes every image field (open_clip's does) would otherwise decode two PNGs per sample, which says more
about this dataset than about the loader."""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from pathlib import Path

def ensure_pairs_dataset(cache_dir: str | Path, samples: int, image_size: int = 32, shard_size: int = 1000, seed: int = 0,
                         image_format: str = "png", max_aspect_ratio: float = 1.0) -> Path:
    """A directory of `shard-NNNNNN.tar`, generated once per parameter set and reused (its manifest is written last).
    `image_format: jpg` with `max_aspect_ratio` above 1 gives img2dataset-like photos: JPEGs of mixed aspect ratios
    whose shorter side is `image_size`."""
    from vlp.workloads.data.shapes import ShapesParams, generate_shapes
    from vlp.workloads.data.shards import iter_shard

    shape = "" if (image_format, max_aspect_ratio) == ("png", 1.0) else f"-{image_format}-aspect{max_aspect_ratio:g}"
    directory = Path(cache_dir) / f"pairs-{samples}-{image_size}px{shape}-{shard_size}-seed{seed}"
    manifest = directory / "manifest.json"
    if manifest.is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    kept_fields = ("json", image_format, "txt")
    params = ShapesParams(samples=samples, seed=seed, image_size=image_size, shard_size=shard_size, image_format=image_format,
                          max_aspect_ratio=max_aspect_ratio)
    with tempfile.TemporaryDirectory(prefix="vlp-bench-shapes-") as scratch:
        generated = generate_shapes(params, scratch)
        for name in generated["shards"]:
            with tarfile.open(directory / name, "w", format=tarfile.USTAR_FORMAT) as archive:
                for sample in iter_shard(str(Path(scratch) / name)):
                    for field in kept_fields:
                        info = tarfile.TarInfo(f"{sample['__key__']}.{field}")
                        info.size, info.mode = len(sample[field]), 0o444
                        archive.addfile(info, io.BytesIO(sample[field]))
    manifest.write_text(json.dumps({"samples": samples, "image_size": image_size, "shards": generated["shards"]}))
    return directory


def shard_paths(directory: Path) -> list[Path]:
    return sorted(Path(directory).glob("shard-*.tar"))


def brace_pattern(directory: Path) -> str:
    """`dir/shard-{000000..000019}.tar`, the shard-list syntax open_clip_train (braceexpand) takes."""
    shards = shard_paths(directory)
    first, last = shards[0].stem.split("-")[1], shards[-1].stem.split("-")[1]
    return str(Path(directory) / f"shard-{{{first}..{last}}}.tar")
