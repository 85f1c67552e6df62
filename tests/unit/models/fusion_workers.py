"""Workers for the fusion models' two-process test: the same tiny model and data on every process, each process
taking its half of the global batch; gradients averaged the way DDP averages them."""

from __future__ import annotations

import torch
import torch.distributed as dist

from vlp.platform.spec.model import ModelSection
from vlp.platform.spec.objective import ObjectiveSection
from vlp.workloads.models.catalog import load_model_cfg
from vlp.workloads.models.factory import build_model_from_cfg, compose_model_cfg
from vlp.workloads.objectives.factory import build_objective

GLOBAL_BATCH = 8
CAPTIONS = [
    "a red circle", "a blue square", "a red circle", "two green stars",
    "a large yellow triangle", "a small blue circle and a red square", "a star", "three purple squares",
]
CASES = [
    # Contrastive, hard-negative ITM, unimodal and multimodal masked terms, FILIP alignment.
    ({"arch": "flava", "preset": "shapes-vit-micro", "fusion": {"alignment_weight": 0.5}, "masked_modeling": {"image_masking": "block", "text_mask_probability": 0.4}}, {}),
    # Co-attention, random ITM negatives, MLM and MIM in separate passes, gathering without grad.
    ({"arch": "fusion", "preset": "shapes-vit-micro", "fusion": {"kind": "co_attention", "mim_weight": 1.0, "contrastive_weight": 0.5, "itm_negatives": "random"}, "masked_modeling": {"text_mask_probability": 0.4}}, {"local_loss": False, "gather_with_grad": False}),
    # BEiT-3's masked data modeling with a contrastive term.
    ({"arch": "multiway", "preset": "shapes-vit-micro", "masked_modeling": {"enabled": True, "contrastive_weight": 1.0, "text_mask_probability": 0.4}}, {}),
]


def build(model_doc: dict):
    section = ModelSection(**model_doc)
    torch.manual_seed(0)
    built = build_model_from_cfg(compose_model_cfg(section, load_model_cfg(section.preset)))
    return built, section


def gradients(model_doc: dict, objective_doc: dict, rank: int | None) -> dict:
    built, section = build(model_doc)
    model = built.model
    objective = build_objective(ObjectiveSection(**objective_doc), section)
    images = torch.randn(GLOBAL_BATCH, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    texts = built.tokenizer(CAPTIONS)
    if rank is not None:
        half = slice(rank * GLOBAL_BATCH // 2, (rank + 1) * GLOBAL_BATCH // 2)
        images, texts = images[half], texts[half]
    # Masks and negatives come from this state on every process.
    torch.manual_seed(1)
    loss = objective(model(images, texts), {})
    loss.backward()
    grads = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters() if p.requires_grad]
    if rank is not None:
        for grad in grads:
            dist.all_reduce(grad)
            grad /= dist.get_world_size()
    return {"grads": grads, "loss": loss.detach(), "terms": objective.metrics()}


def distributed_gradients(rank: int, cases: list) -> list:
    return [gradients(model_doc, objective_doc, rank) for model_doc, objective_doc in cases]
