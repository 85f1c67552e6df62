"""Workers for the video objective's two-process test: the same tiny encoders and data on every process, each
process taking its half of the global batch; gradients averaged the way DDP averages them."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from vlp.platform.spec.model import ModelSection
from vlp.platform.spec.objective import ObjectiveSection
from vlp.workloads.objectives.factory import build_objective

GLOBAL_BATCH = 8


class TinyVideoEncoders(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.video = torch.nn.Linear(6, 4)
        self.text = torch.nn.Linear(5, 4)
        self.decoder = torch.nn.Linear(6, 6)
        self.logit_scale = torch.nn.Parameter(torch.tensor(2.0))

    def forward(self, videos, texts):
        return {
            "video_features": F.normalize(self.video(videos).mean(dim=1), dim=-1),
            "text_features": F.normalize(self.text(texts), dim=-1),
            "logit_scale": self.logit_scale.exp(),
            "masked_video_prediction": self.decoder(videos),
            "masked_video_target": videos.flip(-1),
        }


def video_gradients(objective_doc: dict, video_doc: dict, rank: int | None) -> dict:
    torch.manual_seed(0)
    encoders = TinyVideoEncoders()
    objective = build_objective(ObjectiveSection(**objective_doc), ModelSection(arch="video", video=video_doc))
    generator = torch.Generator().manual_seed(7)
    videos = torch.randn(GLOBAL_BATCH, 3, 6, generator=generator)
    texts = torch.randn(GLOBAL_BATCH, 5, generator=generator)
    labels = torch.tensor([0, 1, -1, 0, 1, -1, 2, 0])  # classes spread over both halves
    if rank is not None:
        half = slice(rank * GLOBAL_BATCH // 2, (rank + 1) * GLOBAL_BATCH // 2)
        videos, texts, labels = videos[half], texts[half], labels[half]
    loss = objective(encoders(videos, texts), {"label": labels})
    loss.backward()
    grads = [torch.zeros_like(parameter) if parameter.grad is None else parameter.grad.clone() for parameter in encoders.parameters()]
    if rank is not None:
        for grad in grads:
            dist.all_reduce(grad)
            grad /= dist.get_world_size()
    return {"grads": grads}


def distributed_video_gradients(rank: int, cases: list) -> list:
    return [video_gradients(objective_doc, video_doc, rank) for objective_doc, video_doc in cases]
