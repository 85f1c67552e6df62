"""A domain-labelled image dataset held in memory, and DomainBed's splits of it for one held-out domain.

Images are decoded once to uint8 at the model's input size (a quarter of the memory of floats) and
normalised per batch. Shapes-sized datasets (thousands of small images) fit easily; a large DomainBed
dataset at 224 px needs a few GB.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlp.platform.errors import VlpUserError
from vlp.workloads.data.readers import EvalSource
from vlp.workloads.evaluation.prompts import class_index, lookup
from vlp.workloads.evaluation.transform import EvalImageTransform


@dataclass(frozen=True)
class DomainData:
    images: torch.Tensor
    """N×3×S×S uint8."""
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


def load_domain_data(source: EvalSource, transform: EvalImageTransform, domains: tuple[str, ...] = ()) -> DomainData:
    index = class_index(source.classnames)
    images, labels, names = [], [], []
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
        raise VlpUserError(f"{source.uri}: leave-one-domain-out needs images of at least two domains (found: {', '.join(found) or 'none'})")
    domain_names = tuple(domains) if domains else found
    return DomainData(
        images=torch.stack(images),
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
