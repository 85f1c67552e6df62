"""What a DG method is to the training loop, and the frozen features every method can draw on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from vlp.workloads.dg.data import DomainData, HeldOutSplits
from vlp.workloads.models.factory import BuiltModel


@dataclass(frozen=True)
class StudyContext:
    """Everything a method is built from for one held-out domain and trial."""

    data: DomainData
    splits: HeldOutSplits
    pretrained: BuiltModel
    """The frozen pretrained VL model."""
    frozen_features: torch.Tensor
    """Its normalised image embedding of every row of `data` (no augmentation, so computed once per study)."""
    finetune: bool


class DgMethod(Protocol):
    name: str
    module: torch.nn.Module
    """The trainable part (wrapped in DistributedDataParallel by the loop when there are several processes)."""

    def inputs(self, rows: torch.Tensor) -> tuple:
        """Arguments of `module` for these rows."""
        ...

    def loss(self, outputs, rows: torch.Tensor) -> torch.Tensor: ...

    def class_logits(self, outputs) -> torch.Tensor:
        """The prediction used for validation and test."""
        ...


@torch.no_grad()
def frozen_image_features(pretrained: BuiltModel, data: DomainData, batch_size: int = 500) -> torch.Tensor:
    pretrained.model.eval()
    chunks = []
    for start in range(0, len(data.labels), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(data.labels)))
        chunks.append(F.normalize(pretrained.model.encode_image(data.pixels(rows)).float(), dim=-1))
    return torch.cat(chunks)


def embed_dim(pretrained: BuiltModel) -> int:
    return int(pretrained.model_cfg["embed_dim"])
