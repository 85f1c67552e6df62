"""Train one method on the source domains and select its checkpoint by training-domain validation (DomainBed).

Every `eval_every` steps (and at the end) the model is scored on each source domain's held-out rows and on the
held-out domain. The reported result is the evaluation point with the best mean source-domain validation
accuracy — the held-out domain never influences the choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from vlp.platform.spec.dg import DgSection
from vlp.platform.tracking.protocol import Tracker
from vlp.workloads.dg.data import HeldOutSplits
from vlp.workloads.dg.method import DgMethod
from vlp.workloads.train.distributed import DistContext

EVAL_BATCH = 500


@dataclass
class Selected:
    step: int
    val_acc: float
    test_acc: float
    val_by_domain: dict[str, float]
    history: list[dict] = field(default_factory=list)
    """Every evaluation point: step, train_loss, val_acc, test_acc."""

    def as_dict(self) -> dict:
        return {"step": self.step, "val_acc": self.val_acc, "test_acc": self.test_acc, "val_by_domain": self.val_by_domain, "history": self.history}


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(dim=1) == labels).float().mean().item() if len(labels) else 0.0


def evaluate(predict, splits: HeldOutSplits, labels: torch.Tensor) -> tuple[float, dict[str, float], float]:
    """(mean source-domain validation accuracy, per source domain, held-out domain accuracy)."""
    by_domain = {name: accuracy(predict(rows), labels[rows]) for name, rows in splits.validation.items()}
    return sum(by_domain.values()) / len(by_domain), by_domain, accuracy(predict(splits.test), labels[splits.test])


def select_without_training(logits: torch.Tensor, splits: HeldOutSplits, labels: torch.Tensor) -> Selected:
    """A method with nothing to train (zero-shot) has one evaluation point."""
    val_acc, by_domain, test_acc = evaluate(lambda rows: logits[rows], splits, labels)
    return Selected(0, val_acc, test_acc, by_domain, [{"step": 0, "val_acc": val_acc, "test_acc": test_acc}])


def train_and_select(method: DgMethod, splits: HeldOutSplits, labels: torch.Tensor, settings: DgSection, dist: DistContext, tracker: Tracker, seed: int, prefix: str) -> Selected | None:
    """Returns the selection on rank 0 (None elsewhere); `prefix` names this trial's metrics (`trial0/val_acc`)."""
    if settings.batch_size % dist.world_size:
        raise ValueError(f"dg.batch_size {settings.batch_size} is not divisible by {dist.world_size} processes")
    module = method.module.to(dist.device)
    trained = DistributedDataParallel(module) if dist.world_size > 1 else module
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=settings.lr, weight_decay=settings.weight_decay)
    # Each rank draws its own share of every domain's batch.
    generator = torch.Generator().manual_seed(seed * 1009 + dist.rank)
    per_domain = settings.batch_size // dist.world_size
    best: Selected | None = None
    history: list[dict] = []
    running, counted = 0.0, 0
    for step in range(1, settings.steps + 1):
        _train_mode(module)
        rows = torch.cat([domain_rows[torch.randint(len(domain_rows), (per_domain,), generator=generator)] for domain_rows in splits.train_by_domain.values()])
        loss = method.loss(trained(*(tensor.to(dist.device) for tensor in method.inputs(rows))), rows)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running, counted = running + loss.item(), counted + 1
        if (step % settings.eval_every == 0 or step == settings.steps) and dist.is_main:
            module.eval()
            with torch.no_grad():
                val_acc, by_domain, test_acc = evaluate(lambda r: _predict(method, r, dist.device), splits, labels)
            point = {"step": step, "train_loss": running / counted, "val_acc": val_acc, "test_acc": test_acc}
            history.append(point)
            tracker.log_metrics({f"{prefix}/{key}": value for key, value in point.items() if key != "step"}, step=step)
            running, counted = 0.0, 0
            if best is None or val_acc > best.val_acc:
                best = Selected(step, val_acc, test_acc, by_domain)
    if best is not None:
        best.history = history
    return best


def _predict(method: DgMethod, rows: torch.Tensor, device: torch.device) -> torch.Tensor:
    chunks = []
    for start in range(0, len(rows), EVAL_BATCH):
        inputs = (tensor.to(device) for tensor in method.inputs(rows[start : start + EVAL_BATCH]))
        chunks.append(method.class_logits(method.module(*inputs)).cpu())
    return torch.cat(chunks) if chunks else torch.empty(0)


def _train_mode(module: torch.nn.Module) -> None:
    """Train mode, except BatchNorm layers that are not trained: their statistics stay the pretrained ones."""
    module.train()
    for layer in module.modules():
        if isinstance(layer, _BatchNorm) and not any(p.requires_grad for p in layer.parameters()):
            layer.eval()
