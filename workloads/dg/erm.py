"""ERM: the pretrained VL model's image encoder (fine-tuned, or frozen) under a linear class head, cross-entropy
on the pooled source domains."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vlp.workloads.dg.method import StudyContext, embed_dim
from vlp.workloads.dg.student import StudentEncoder


class ErmClassifier(nn.Module):
    def __init__(self, visual: nn.Module, features: int, classes: int, finetune: bool):
        super().__init__()
        self.encoder = StudentEncoder(visual)
        self.encoder.requires_grad_(finetune)
        self.head = nn.Linear(features, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(images))


class Erm:
    name = "erm"

    def __init__(self, context: StudyContext):
        self.context = context
        self.module = ErmClassifier(context.pretrained.model.visual, embed_dim(context.pretrained), len(context.data.classnames), context.finetune)

    def inputs(self, rows: torch.Tensor) -> tuple:
        return (self.context.data.pixels(rows),)

    def loss(self, outputs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, self.context.data.labels[rows].to(outputs.device))

    def class_logits(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs
