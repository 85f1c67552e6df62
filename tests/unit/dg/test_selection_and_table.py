"""DomainBed's model selection (best training-domain validation, never the held-out domain) and its table."""

from __future__ import annotations

import pytest
import torch
from dg_toy import colour_domains

from vlp.platform.spec.dg import DgSection
from vlp.platform.tracking.protocol import NullTracker
from vlp.workloads.dg.data import split_for
from vlp.workloads.dg.selection import select_without_training, train_and_select
from vlp.workloads.dg.study import summarise
from vlp.workloads.dg.table import flat_metrics, markdown_table
from vlp.workloads.train.distributed import DistContext

pytestmark = pytest.mark.usefixtures("one_thread")

SINGLE = DistContext(rank=0, world_size=1, local_world_size=1, device=torch.device("cpu"))


class ScriptedModule(torch.nn.Module):
    """Right on validation rows at step 2 and on held-out rows at step 4, wrong everywhere else."""

    def __init__(self, data, splits):
        super().__init__()
        self.data, self.step = data, 0
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.validation_rows = set(torch.cat(list(splits.validation.values())).tolist())
        self.test_rows = set(splits.test.tolist())

    def forward(self, rows):
        first = rows[0].item()
        right = (self.step == 2 and first in self.validation_rows) or (self.step == 4 and first in self.test_rows)
        labels = self.data.labels[rows] if right else (self.data.labels[rows] + 1) % 3
        return torch.nn.functional.one_hot(labels, 3).float() + 0 * self.weight


class ScriptedMethod:
    name = "scripted"

    def __init__(self, data, splits):
        self.module = ScriptedModule(data, splits)

    def inputs(self, rows):
        return (rows,)

    def loss(self, outputs, rows):
        self.module.step += 1
        return outputs.sum() * 0

    def class_logits(self, outputs):
        return outputs


def test_selection_reports_the_best_validation_step_not_the_best_test_step():
    data = colour_domains()
    splits = split_for(data, "light", 0.25, seed=0)
    method = ScriptedMethod(data, splits)
    selected = train_and_select(method, splits, data.labels, DgSection(steps=4, eval_every=2, batch_size=2), SINGLE, NullTracker(), 0, "trial0")
    assert [point["step"] for point in selected.history] == [2, 4]
    assert selected.step == 2 and selected.val_acc == 1.0 and selected.test_acc == 0.0
    assert selected.history[1]["test_acc"] == 1.0 and selected.history[1]["val_acc"] == 0.0


def test_zero_shot_selection_scores_validation_and_held_out_rows():
    data = colour_domains()
    splits = split_for(data, "dark", 0.25, seed=0)
    logits = torch.nn.functional.one_hot(data.labels, 3).float()
    logits[splits.test[:9]] = torch.nn.functional.one_hot((data.labels[splits.test[:9]] + 1) % 3, 3).float()
    selected = select_without_training(logits, splits, data.labels)
    assert selected.val_acc == 1.0 and selected.test_acc == pytest.approx(1 - 9 / 18)


def test_summary_uses_domainbeds_standard_error():
    summary = summarise([{"test_acc": 0.5, "val_acc": 0.9}, {"test_acc": 0.7, "val_acc": 0.8}, {"test_acc": 0.6, "val_acc": 0.7}])
    # population std of (0.5, 0.7, 0.6) is sqrt(0.02/3); divided by sqrt(3)
    assert summary["test_acc"] == pytest.approx(0.6) and summary["val_acc"] == pytest.approx(0.8)
    assert summary["test_acc_stderr"] == pytest.approx((0.02 / 3) ** 0.5 / 3**0.5)


def result(held_out: str, **accuracies: float) -> dict:
    return {"held_out": held_out, "methods": {m: {"test_acc": a, "test_acc_stderr": 0.01, "val_acc": 0.9} for m, a in accuracies.items()}}


def test_table_has_a_row_per_method_a_column_per_domain_and_the_average():
    results = [result("sketch", zeroshot=0.5, erm=0.8, indigo=0.9), result("cartoon", zeroshot=0.3, erm=0.6, indigo=0.5)]
    table = markdown_table(results)
    assert "| Algorithm | cartoon | sketch | Avg |" in table
    assert "| Zero-shot | 30.0 ± 1.0 | 50.0 ± 1.0 | 40.0 |" in table
    assert "| ERM | 60.0 ± 1.0 | 80.0 ± 1.0 | 70.0 |" in table
    assert "| InDiGo | 50.0 ± 1.0 | 90.0 ± 1.0 | 70.0 |" in table
    metrics = flat_metrics(results)
    assert metrics["dg/erm/avg"] == pytest.approx(0.7) and metrics["dg/indigo/sketch"] == 0.9 and metrics["dg/erm/cartoon/val"] == 0.9
