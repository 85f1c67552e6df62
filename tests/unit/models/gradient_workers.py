"""Workers for the objective-equivalence tests: the same tiny encoders and data on every process, each process
taking its half of the global batch; gradients are averaged the way DDP averages them."""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
import torch.nn.functional as F

from vlp.platform.spec.model import ModelSection
from vlp.platform.spec.objective import ObjectiveSection
from vlp.workloads.objectives.factory import build_objective
from vlp.workloads.train.accumulation import GradientAccumulation

GLOBAL_BATCH = 8
PATCHES = 3


class TinyEncoders(torch.nn.Module):
    """Linear image (per patch) and text encoders: gradients through every path a real model has."""

    def __init__(self):
        super().__init__()
        self.image = torch.nn.Linear(6, 4)
        self.text = torch.nn.Linear(5, 4)
        self.vocabulary = torch.nn.Linear(5, 7)
        self.logit_scale = torch.nn.Parameter(torch.tensor(2.0))
        self.logit_bias = torch.nn.Parameter(torch.tensor(-1.0))

    def forward(self, images, texts, labels):
        patches = F.normalize(self.image(images), dim=-1)
        return {
            "image_features": F.normalize(patches.mean(dim=1), dim=-1),
            "image_patches": patches,
            "text_features": F.normalize(self.text(texts), dim=-1),
            "logit_scale": self.logit_scale.exp(),
            "logit_bias": self.logit_bias,
            "caption_logits": self.vocabulary(texts),
            "caption_labels": labels,
        }


def data():
    generator = torch.Generator().manual_seed(7)
    images = torch.randn(GLOBAL_BATCH, PATCHES, 6, generator=generator)
    texts = torch.randn(GLOBAL_BATCH, 5, generator=generator)
    labels = torch.randint(0, 7, (GLOBAL_BATCH,), generator=generator)
    return images, texts, labels


def gradients(objective_doc: dict, model_doc: dict, rank: int | None, mixture: torch.Tensor | None, steps: int = 1, accum_steps: int | None = None):
    """Loss and parameter gradients (DDP-averaged when `rank` is set) of `steps` forward/backward passes, each over
    `accum_steps` micro-batches when set (vlp's gradient accumulation)."""
    torch.manual_seed(0)
    encoders = TinyEncoders()
    objective = build_objective(ObjectiveSection(**objective_doc), ModelSection(**model_doc))
    if mixture is not None:
        objective.harmonizer.mixture.copy_(mixture)
    images, texts, labels = data()
    if rank is not None:
        half = slice(rank * GLOBAL_BATCH // 2, (rank + 1) * GLOBAL_BATCH // 2)
        images, texts, labels = images[half], texts[half], labels[half]
    grads = None
    losses = []
    for _ in range(steps):
        encoders.zero_grad()
        if accum_steps is None:
            loss = objective(encoders(images, texts, labels))
            loss.backward()
        else:
            loss = GradientAccumulation(encoders, objective, accum_steps, contextlib.nullcontext()).forward_backward(images, texts, labels)
        losses.append(loss.detach())
    grads = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in encoders.parameters()]
    if rank is not None:
        for grad in grads:
            dist.all_reduce(grad)
            grad /= dist.get_world_size()
    state = objective.harmonizer.state_dict() if objective.harmonizer is not None else {}
    return {"grads": grads, "losses": losses, "harmonizer": state}


def distributed_gradients(rank: int, cases: list) -> list:
    return [gradients(objective_doc, model_doc, rank, mixture, steps) for objective_doc, model_doc, mixture, steps in cases]


def accumulated_gradients(rank: int, cases: list, accum_steps: int) -> list:
    return [gradients(objective_doc, model_doc, rank, mixture, steps, accum_steps) for objective_doc, model_doc, mixture, steps in cases]
