"""Datasets in CLIP_benchmark's webdataset layout, written by CLIP_benchmark's own converter
(`clip_benchmark.webdataset_builder`), and its result-table code, for interop tests.

CLIP_benchmark (PyPI `clip-benchmark` 1.6.2) is installed without its dependencies: its metrics, readers and
writers need only torch, webdataset, scikit-learn and tqdm, which vlp already has.
"""

from __future__ import annotations

import io
import sys
import types
from pathlib import Path

import numpy as np

CLASSES = tuple(f"class {index}" for index in range(6))
TEMPLATES = ("a photo of a {c}.", "a blurry photo of the {c}.", "art of a {c}.")


def random_image(index: int, size: tuple[int, int] = (28, 20)):
    from PIL import Image

    generator = np.random.default_rng(index)
    return Image.fromarray(generator.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def image_bytes(image, image_format: str) -> bytes:
    from clip_benchmark.webdataset_builder import PIL_to_bytes

    return PIL_to_bytes(image_format)(image)


class _Labelled(list):
    """A list of (image bytes, label) with the `classes` and `templates` attributes CLIP_benchmark's converter saves."""

    classes = list(CLASSES)
    templates = list(TEMPLATES)


def write_classification(root: Path, count: int, image_format: str = "webp", per_shard: int = 8, split: str = "test") -> Path:
    """Image i is class i % 6 (so every class occurs once there are six images)."""
    from clip_benchmark.webdataset_builder import convert_dataset

    samples = _Labelled((image_bytes(random_image(index), image_format), index % len(CLASSES)) for index in range(count))
    convert_dataset(samples, split, str(root), image_format=image_format, max_count=per_shard, verbose=False)
    return root


def captions_of(index: int) -> list[str]:
    """1–3 captions per image; every third image also has a caption another image shares."""
    own = [f"picture {index} variant {variant}" for variant in range(1 + index % 3)]
    return own + (["a shared caption"] if index % 3 == 0 else [])


def write_retrieval(root: Path, count: int, image_format: str = "png", per_shard: int = 5) -> Path:
    from clip_benchmark.webdataset_builder import convert_retrieval_dataset

    samples = [(image_bytes(random_image(index), image_format), captions_of(index)) for index in range(count)]
    convert_retrieval_dataset(samples, "test", str(root), image_format=image_format, max_count=per_shard, verbose=False)
    return root


def clip_benchmark_cli():
    """`clip_benchmark.cli` imports its captioning metric, which imports pycocoevalcap (a 100 MB wheel of Java
    tools) at module level; the result-table code (`main_build`) never calls it, so empty stand-ins let the real
    module load."""
    stand_ins = {
        "pycocoevalcap.tokenizer.ptbtokenizer": "PTBTokenizer", "pycocoevalcap.bleu.bleu": "Bleu", "pycocoevalcap.meteor.meteor": "Meteor",
        "pycocoevalcap.rouge.rouge": "Rouge", "pycocoevalcap.cider.cider": "Cider", "pycocoevalcap.spice.spice": "Spice",
    }
    try:
        import pycocoevalcap  # noqa: F401
    except ImportError:
        _stand_in(stand_ins)
    import clip_benchmark.cli

    return clip_benchmark.cli


def _stand_in(stand_ins: dict[str, str]) -> None:
    for name, attribute in stand_ins.items():
        parts = name.split(".")
        for end in range(1, len(parts) + 1):
            sys.modules.setdefault(".".join(parts[:end]), types.ModuleType(".".join(parts[:end])))
        setattr(sys.modules[name], attribute, None)


def decoded(image: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(image)).convert("RGB"))
