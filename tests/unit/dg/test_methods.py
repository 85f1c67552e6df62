"""Splits follow DomainBed; ERM and InDiGo train (loss falls) on the source domains only; InDiGo's targets are right."""

from __future__ import annotations

import pytest
import torch
from dg_toy import colour_domains, tiny_pretrained

from vlp.platform.spec.dg import DgSection, IndigoSection
from vlp.workloads.dg.data import split_for
from vlp.workloads.dg.erm import Erm
from vlp.workloads.dg.indigo import Indigo
from vlp.workloads.dg.method import StudyContext, frozen_image_features

pytestmark = pytest.mark.usefixtures("one_thread")


def context(held_out: str = "light", finetune: bool = True) -> StudyContext:
    data = colour_domains()
    pretrained = tiny_pretrained()
    splits = split_for(data, held_out, holdout_fraction=0.25, seed=3)
    return StudyContext(data, splits, pretrained, frozen_image_features(pretrained, data), finetune)


def test_split_keeps_held_out_domain_out_of_training_and_validation():
    data = colour_domains(per_cell=8)
    splits = split_for(data, "grey", holdout_fraction=0.25, seed=0)
    assert splits.source_domains == ("dark", "light")
    assert set(data.domains[splits.train].tolist()) == {0, 2}
    assert set(data.domains[splits.test].tolist()) == {1} and len(splits.test) == 24
    for name, rows in splits.validation.items():
        assert len(rows) == 6 and not set(rows.tolist()) & set(splits.train.tolist())
        assert set(data.domains[rows].tolist()) == {data.domain_names.index(name)}
    assert torch.equal(split_for(data, "grey", 0.25, seed=0).train, splits.train)
    assert not torch.equal(split_for(data, "grey", 0.25, seed=1).train, splits.train)


def train_steps(method, rows: torch.Tensor, steps: int) -> list[float]:
    optimizer = torch.optim.AdamW([p for p in method.module.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    method.module.train()
    for _ in range(steps):
        loss = method.loss(method.module(*method.inputs(rows)), rows)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_erm_loss_falls():
    study = context()
    losses = train_steps(Erm(study), study.splits.train, 15)
    assert losses[-1] < 0.5 * losses[0]


def test_erm_linear_head_leaves_the_encoder_frozen():
    study = context(finetune=False)
    method = Erm(study)
    before = [p.clone() for p in method.module.encoder.parameters()]
    train_steps(method, study.splits.train, 3)
    assert all(torch.equal(a, b) for a, b in zip(before, method.module.encoder.parameters()))


def test_indigo_targets_are_class_times_source_domain_and_loss_falls():
    study = context(held_out="dark")
    method = Indigo(study, IndigoSection())
    # Bank rows: class-major over the source domains (grey, light).
    assert method.module.text_bank.shape == (3 * 2, 64)
    rows = study.splits.train
    class_logits, cosine_logits = method.module(*method.inputs(rows))
    labels, domains = study.data.labels[rows], study.data.domains[rows]
    expected = labels * 2 + (domains - 1)  # grey (1) -> 0, light (2) -> 1
    pair_loss = torch.nn.functional.cross_entropy(cosine_logits, expected)
    class_loss = torch.nn.functional.cross_entropy(class_logits, labels)
    assert torch.isclose(method.loss((class_logits, cosine_logits), rows), 0.5 * class_loss + 0.5 * pair_loss)
    losses = train_steps(method, rows, 15)
    assert losses[-1] < 0.5 * losses[0]
    assert torch.equal(method.class_logits((class_logits, cosine_logits)), class_logits)


def test_indigo_cosine_weight_zero_is_class_head_only():
    study = context()
    method = Indigo(study, IndigoSection(cosine_weight=0.0))
    rows = study.splits.train[:8]
    class_logits, cosine_logits = method.module(*method.inputs(rows))
    expected = torch.nn.functional.cross_entropy(class_logits, study.data.labels[rows])
    assert torch.isclose(method.loss((class_logits, cosine_logits), rows), expected)


def test_dg_section_rejects_what_cannot_run():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="dg.root is required"):
        DgSection(source="domainbed")
    with pytest.raises(ValidationError, match="at least two domains"):
        DgSection(domains=("photo",))
    with pytest.raises(ValidationError, match="needs both"):
        IndigoSection(domain_prompt="a photo of a {classname}")
