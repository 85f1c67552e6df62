"""Load a trained model from a checkpoint, and encode a dataset's images (one pass) and texts with it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from vlp.platform.errors import VlpUserError
from vlp.workloads.data.readers import EvalRecord
from vlp.workloads.evaluation.transform import EvalImageTransform
from vlp.workloads.models.factory import BuiltModel, build_model_from_cfg
from vlp.workloads.train.checkpoint import load_checkpoint

# Called once per batch with the model's input pixels and the batch's records (segmentation scores masks here).
BatchHook = Callable[[torch.Tensor, list[EvalRecord]], None]


def load_trained_model(checkpoint_uri: str) -> BuiltModel:
    state = load_checkpoint(checkpoint_uri)
    built = build_model_from_cfg(json.loads(state["model_cfg"]))
    built.model.load_state_dict(state["model"])
    built.model.eval()
    return built


@dataclass
class EncodedSet:
    """Normalised image features (N×D) and, row for row, what the records said about each image."""

    image_features: torch.Tensor
    keys: list[str]
    captions: list[tuple[str, ...]]
    """Every caption of each image (none, one, or several)."""
    labels: list[str | None]
    domains: list[str | None]
    label_indices: list[int | None] = field(default_factory=list)
    """The class index the format gives, where it labels by index (see `EvalRecord.label_index`)."""


def image_transform(built: BuiltModel) -> EvalImageTransform:
    return EvalImageTransform(built.preprocess)


@torch.no_grad()
def encode_records(built: BuiltModel, records: Iterable[EvalRecord], batch_size: int, hooks: tuple[BatchHook, ...] = (), limit: int | None = None) -> EncodedSet:
    transform = image_transform(built)
    features: list[torch.Tensor] = []
    encoded = EncodedSet(torch.empty(0), [], [], [], [])
    pending: list[EvalRecord] = []

    def flush() -> None:
        pixels = torch.stack([decoded(transform, record) for record in pending])
        features.append(F.normalize(built.model.encode_image(pixels).float(), dim=-1))
        for hook in hooks:
            hook(pixels, list(pending))
        pending.clear()

    for count, record in enumerate(records):
        if limit is not None and count >= limit:
            break
        pending.append(record)
        encoded.keys.append(record.key)
        encoded.captions.append(record.all_captions)
        encoded.label_indices.append(record.label_index)
        encoded.labels.append(record.label)
        encoded.domains.append(record.domain)
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    encoded.image_features = torch.cat(features) if features else torch.empty(0, 0)
    return encoded


def decoded(transform: EvalImageTransform, record: EvalRecord) -> torch.Tensor:
    try:
        return transform(record.image)
    except ValueError as err:  # evaluation counts every image: one that does not decode stops it, naming the image
        raise VlpUserError(f"data: image {record.key}: {err}; replace or remove it and evaluate again") from None


@torch.no_grad()
def encode_texts(built: BuiltModel, texts: list[str], batch_size: int) -> torch.Tensor:
    chunks = [F.normalize(built.model.encode_text(built.tokenizer(texts[i : i + batch_size])).float(), dim=-1) for i in range(0, len(texts), batch_size)]
    return torch.cat(chunks)

