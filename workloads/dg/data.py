"""A domain-labelled image dataset, and DomainBed's splits of it for one held-out domain.

Images are streamed from storage once, decoded to uint8 at the model's input size, and spilled to an
unlinked temporary file (`ImageRows`); batches read their rows back and are normalised then. The process keeps
only labels and domain indices per image, so its memory does not grow with the dataset: a large DomainBed
dataset at 224 px costs disk (150 KB an image) and page cache, not resident memory.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import torch

from vlp.platform.errors import VlpUserError
from vlp.platform.spec.dg import DgSection
from vlp.workloads.data.readers import EvalSource, ReaderOptions, open_source
from vlp.workloads.evaluation.prompts import class_index, lookup
from vlp.workloads.evaluation.transform import EvalImageTransform


class ImageRows:
    """Equal-shaped uint8 images by row number, kept in an unlinked temporary file (gone when closed or the
    process ends). Rows are written once, in order, and read back in any order by positioned reads."""

    def __init__(self, directory: str | None = None):
        self._file = tempfile.TemporaryFile(dir=directory)
        self.shape: tuple[int, ...] | None = None
        self._row_bytes = 0
        self._rows = 0
        self._unflushed = False

    @classmethod
    def of(cls, images: torch.Tensor) -> "ImageRows":
        """Rows holding the images of an N×… uint8 tensor."""
        rows = cls()
        for image in images:
            rows.append(image)
        return rows

    def append(self, image: torch.Tensor) -> None:
        if self.shape is None:
            self.shape, self._row_bytes = tuple(image.shape), image.numel()
        if image.dtype != torch.uint8 or tuple(image.shape) != self.shape:
            raise ValueError(f"image {self._rows}: {tuple(image.shape)} {image.dtype}, expected uint8 {self.shape}")
        self._file.write(image.contiguous().numpy().tobytes())
        self._rows += 1
        self._unflushed = True

    def __len__(self) -> int:
        return self._rows

    def __getitem__(self, rows: torch.Tensor) -> torch.Tensor:
        """len(rows)×… uint8 images."""
        if self._unflushed:
            self._file.flush()
            self._unflushed = False
        out = torch.empty((len(rows), *(self.shape or ())), dtype=torch.uint8)
        target = out.numpy().reshape(len(rows), -1)
        descriptor = self._file.fileno()
        for position, row in enumerate(rows.tolist()):
            if not 0 <= row < self._rows:
                raise IndexError(f"row {row} of {self._rows}")
            if os.preadv(descriptor, [target[position]], row * self._row_bytes) != self._row_bytes:
                raise OSError(f"short read of image row {row} from the spill file")
        return out

    def close(self) -> None:
        self._file.close()

    @property
    def nbytes(self) -> int:
        return self._rows * self._row_bytes


@dataclass(frozen=True)
class DomainData:
    images: ImageRows
    """N uint8 images, 3×S×S, read by row."""
    labels: torch.Tensor
    """N class indices into `classnames`."""
    domains: torch.Tensor
    """N domain indices into `domain_names`."""
    classnames: tuple[str, ...]
    domain_names: tuple[str, ...]
    transform: EvalImageTransform

    def pixels(self, indices: torch.Tensor) -> torch.Tensor:
        """The model's normalised input for these rows."""
        return self.transform.normalise(self.images[indices])

    def rows_of(self, domain: str) -> torch.Tensor:
        return (self.domains == self.domain_names.index(domain)).nonzero().flatten()


@dataclass(frozen=True)
class HeldOutSplits:
    """One leave-one-domain-out split: training rows of the source domains, their held-out validation rows
    (per domain, for model selection), and every row of the held-out domain (the test)."""

    held_out: str
    source_domains: tuple[str, ...]
    train: torch.Tensor
    train_by_domain: dict[str, torch.Tensor]
    validation: dict[str, torch.Tensor]
    test: torch.Tensor


def open_dg_source(settings: DgSection, dataset_uri: str) -> EvalSource:
    """The study's data: shards (generated shapes, or `source: shards`) whose json holds `label_field` and
    `domain_field`, or DomainBed folders (`root/domain/class/*.jpg`)."""
    format = "domainbed" if settings.source == "domainbed" else "wds"
    return open_source(dataset_uri, format, ReaderOptions(label_field=settings.label_field, domain_field=settings.domain_field))


def domains_of(source: EvalSource) -> tuple[str, ...]:
    """The domains the source names up front, else those its records carry (one streaming pass)."""
    return source.domains or tuple(sorted({record.domain for record in source.read() if record.domain is not None}))


def load_domain_data(source: EvalSource, transform: EvalImageTransform, domains: tuple[str, ...] = ()) -> DomainData:
    """Stream the source once: every image with a known class and a domain (of `domains`, when given) is decoded
    and spilled to disk, so memory stays flat however many images there are."""
    index = class_index(source.classnames)
    images, labels, names = ImageRows(), [], []
    for record in source.read():
        label = lookup(index, record.label)
        if label is None or record.domain is None or (domains and record.domain not in domains):
            continue
        images.append(transform.to_uint8(record.image))
        labels.append(label)
        names.append(record.domain)
    found = tuple(sorted(set(names)))
    missing = sorted(set(domains) - set(found))
    if missing:
        raise VlpUserError(f"dg.domains: {', '.join(missing)} not in {source.uri} (found: {', '.join(found) or 'none'})")
    if len(found) < 2:
        raise VlpUserError(
            f"{source.uri}: leave-one-domain-out needs images of at least two domains (found: {', '.join(found) or 'none'}); "
            "check dg.label_field and dg.domain_field"
        )
    domain_names = tuple(domains) if domains else found
    return DomainData(
        images=images,
        labels=torch.tensor(labels),
        domains=torch.tensor([domain_names.index(name) for name in names]),
        classnames=tuple(source.classnames),
        domain_names=domain_names,
        transform=transform,
    )


def split_for(data: DomainData, held_out: str, holdout_fraction: float, seed: int) -> HeldOutSplits:
    """DomainBed's split: each source domain's rows shuffled with `seed`, the first `holdout_fraction` kept for validation."""
    if held_out not in data.domain_names:
        raise VlpUserError(f"held-out domain {held_out!r} is not one of {', '.join(data.domain_names)}")
    generator = torch.Generator().manual_seed(seed)
    sources = tuple(name for name in data.domain_names if name != held_out)
    train, validation = {}, {}
    for name in sources:
        rows = data.rows_of(name)
        rows = rows[torch.randperm(len(rows), generator=generator)]
        cut = max(1, int(round(holdout_fraction * len(rows))))
        validation[name], train[name] = rows[:cut], rows[cut:]
    return HeldOutSplits(held_out, sources, torch.cat(list(train.values())), train, validation, data.rows_of(held_out))
