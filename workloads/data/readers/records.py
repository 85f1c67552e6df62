"""What every dataset reader yields: one image with whatever labels its format carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


@dataclass(frozen=True)
class EvalRecord:
    """One image. Formats fill what they know: shards carry all of it, an image folder only the class."""

    key: str
    """Unique within the dataset (a shard key or a relative file path)."""
    image: bytes
    """The encoded image (PNG, JPEG, ...)."""
    caption: str | None = None
    """The image's caption (its first, where it has several)."""
    label: str | None = None
    """Class name of the image."""
    domain: str | None = None
    """Domain (render style, DomainBed environment) the image belongs to."""
    mask: bytes | None = None
    """Encoded greyscale PNG: 0 is background, i+1 marks pixels of object i."""
    object_labels: tuple[str, ...] = ()
    """Class name of each object in `mask`, in mask order."""
    captions: tuple[str, ...] = ()
    """Every caption of the image where it has several (COCO and Flickr have five); empty: just `caption`."""
    label_index: int | None = None
    """Position of the class in the source's `classnames`, where the format labels by index (CLIP_benchmark's
    `.cls`); it tells apart classes that share a name (ImageNet has two `missile`s)."""
    questions: tuple[dict, ...] = ()
    """Questions about the image: {"question", "answer", "kind"} (VQA-style; `answers` holds every annotator's
    answer where the format has several, `answer` the most common one)."""
    refexps: tuple[dict, ...] = ()
    """Referring expressions: {"expression", "box": [x0, y0, x1, y1] in pixels of `image`, "object"} (RefCOCO-style;
    `object` indexes `object_labels` in shapes data, names the annotation elsewhere)."""

    @property
    def all_captions(self) -> tuple[str, ...]:
        return self.captions or ((self.caption,) if self.caption else ())


@dataclass(frozen=True)
class EvalSource:
    """A dataset opened for reading: its name, its classes, and a fresh iterator over its records per call."""

    name: str
    uri: str
    format: str
    classnames: tuple[str, ...]
    read: Callable[[], Iterator[EvalRecord]] = field(repr=False)
    domains: tuple[str, ...] = ()
    """Domains known up front (folder names, the manifest's); readers may also find them while reading."""
    templates: tuple[str, ...] = ()
    """Prompt templates the dataset ships (CLIP_benchmark's `zeroshot_classification_templates.txt`), `{c}` or `{}` for the class."""
    answers: tuple[str, ...] = ()
    """The answer vocabulary of its questions (the shapes manifest's `answers`; a VQA source's answers, sorted)."""


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def dataset_name(uri: str) -> str:
    """The last path segment, without a table extension: `s3://b/data/pacs/` -> `pacs`."""
    last = uri.rstrip("/").rsplit("/", 1)[-1]
    for extension in (".csv", ".tsv"):
        if last.lower().endswith(extension):
            return last[: -len(extension)]
    return last or "dataset"
