"""Load a trained model from a checkpoint and encode an evaluation set with it."""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vlp.workloads.data.loader import ImageTextDecoder, iter_eval_samples
from vlp.workloads.models.factory import BuiltModel, build_model_from_cfg
from vlp.workloads.train.checkpoint import load_checkpoint


def load_trained_model(checkpoint_uri: str) -> BuiltModel:
    state = load_checkpoint(checkpoint_uri)
    built = build_model_from_cfg(json.loads(state["model_cfg"]))
    built.model.load_state_dict(state["model"])
    built.model.eval()
    return built


@dataclass
class EncodedSet:
    image_features: torch.Tensor
    captions: list[str]
    metadata: list[dict]


@torch.no_grad()
def encode_eval_set(built: BuiltModel, shard_uris: list[str], batch_size: int) -> EncodedSet:
    decode = ImageTextDecoder(built.image_size, built.image_mean, built.image_std)
    features, captions, metadata, pending = [], [], [], []

    def flush():
        features.append(F.normalize(built.model.encode_image(torch.stack(pending)), dim=-1))
        pending.clear()

    for sample in iter_eval_samples(shard_uris):
        image, caption = decode(sample)
        pending.append(image)
        captions.append(caption)
        metadata.append(json.loads(sample["json"]) if "json" in sample else {})
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    return EncodedSet(torch.cat(features), captions, metadata)


@torch.no_grad()
def encode_texts(built: BuiltModel, texts: list[str], batch_size: int) -> torch.Tensor:
    chunks = [F.normalize(built.model.encode_text(built.tokenizer(texts[i : i + batch_size])), dim=-1) for i in range(0, len(texts), batch_size)]
    return torch.cat(chunks)
