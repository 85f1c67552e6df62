"""Worker for the combination test: each architecture x pooling x objective trains a few DDP steps on a fixed
batch (so the loss must fall), then rank 0 writes a checkpoint the way the trainer does and reloads it."""

from __future__ import annotations

import json

import torch
from torch.nn.parallel import DistributedDataParallel

from vlp.platform.spec.model import ModelSection
from vlp.platform.spec.objective import ObjectiveSection
from vlp.workloads.evaluation.encode import load_trained_model
from vlp.workloads.models.factory import build_model
from vlp.workloads.objectives.factory import build_objective
from vlp.workloads.train.checkpoint import Checkpointer
from vlp.workloads.train.optim import build_optimizer

CAPTIONS = [
    "a small red circle", "a large blue square", "a green triangle", "a photo of a yellow star",
    "a sketch of a purple ring", "a cartoon of a cyan cross", "a large orange diamond", "a small pink crescent",
]
STEPS = 8
NLIP_FAST = {"warmup_steps": 2, "refresh_every": 2, "history": 64, "em_iterations": 5}


def train_combination(rank: int, model_doc: dict, objective_doc: dict, checkpoint_root: str, step_seed: int | None = None) -> dict:
    """`step_seed`: reseed torch before every step, so models that draw masks or negatives see the same ones each step."""
    torch.manual_seed(0)
    model_section, objective_section = ModelSection(**model_doc), ObjectiveSection(**objective_doc)
    built = build_model(model_section, objective_section.contrastive)
    model = built.model
    ddp = DistributedDataParallel(model)
    objective = build_objective(objective_section, model_section)
    optimizer = build_optimizer(model, 3e-3, 0.0)
    generator = torch.Generator().manual_seed(rank)
    images = torch.randn(4, 3, built.image_size, built.image_size, generator=generator)
    texts = built.tokenizer(CAPTIONS[rank * 4 : rank * 4 + 4])
    losses = []
    model.train()
    for _ in range(STEPS):
        if step_seed is not None:
            torch.manual_seed(step_seed)
        loss = objective(ddp(images, texts))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    result = {"losses": losses, "round_trip": None}
    if rank == 0:
        uri = Checkpointer(checkpoint_root).save(
            {"step": STEPS, "model": model.state_dict(), "model_cfg": json.dumps(built.model_cfg), "objective": objective.state_dict()}, STEPS
        )
        model.eval()
        reloaded = load_trained_model(uri)
        with torch.no_grad():
            result["round_trip"] = {
                "image": (model.encode_image(images), reloaded.model.encode_image(images)),
                "text": (model.encode_text(texts), reloaded.model.encode_text(texts)),
            }
            result["tied_after_reload"] = _tied_pairs(reloaded.model)
        result["tied_before"] = _tied_pairs(model)
    return result


def _tied_pairs(model: torch.nn.Module) -> int:
    seen, shared = {}, 0
    for name, parameter in model.named_parameters(remove_duplicate=False):
        shared += id(parameter) in seen
        seen.setdefault(id(parameter), name)
    return shared


def train_all(rank: int, combinations: list, checkpoint_root: str, step_seed: int | None = None) -> list:
    return [train_combination(rank, model_doc, objective_doc, f"{checkpoint_root}/{index}", step_seed) for index, (model_doc, objective_doc) in enumerate(combinations)]
