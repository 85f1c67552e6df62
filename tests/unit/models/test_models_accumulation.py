"""train.accum_steps: the gradients of a batch processed in micro-batches equal those of one pass over the whole
batch, for every contrastive loss and gathering mode, with NLIP, PACL and CoCa's captioning term, on one process
and on two gloo processes."""

from __future__ import annotations

import pytest
import torch

from gradient_workers import GLOBAL_BATCH, accumulated_gradients, gradients
from test_models_objective_gathering import MIXTURE, cases
from two_process_gloo import run_on_two_processes


def assert_same_update(expected: dict, got: dict, objective_doc: dict) -> None:
    for reference, accumulated in zip(expected["grads"], got["grads"]):
        assert torch.allclose(accumulated, reference, atol=1e-6, rtol=1e-5), (reference, accumulated)
    for reference, accumulated in zip(expected["losses"], got["losses"]):
        assert torch.allclose(accumulated, reference, atol=1e-6), (reference, accumulated)
    if "nlip" in objective_doc.get("noise", ""):
        # The loss memory and mixture see each batch once, as without accumulation.
        for key, value in expected["harmonizer"].items():
            assert torch.allclose(got["harmonizer"][key].float(), value.float(), atol=1e-6, equal_nan=True), key


@pytest.mark.parametrize("accum_steps", [2, GLOBAL_BATCH])
@pytest.mark.parametrize("index", range(len(cases())), ids=[f"{o}-{m['arch']}-steps{s}" for o, m, _, s in cases()])
def test_micro_batches_give_the_whole_batch_gradients(index, accum_steps):
    objective_doc, model_doc, mixture, steps = cases()[index]
    whole = gradients(objective_doc, model_doc, None, mixture, steps)
    accumulated = gradients(objective_doc, model_doc, None, mixture, steps, accum_steps)
    assert_same_update(whole, accumulated, objective_doc)


@pytest.fixture(scope="module")
def two_process_results():
    return run_on_two_processes(accumulated_gradients, cases(), 2)


@pytest.mark.parametrize("index", range(len(cases())), ids=[f"{o}-{m['arch']}-steps{s}" for o, m, _, s in cases()])
def test_two_processes_accumulating_match_one_process_on_the_whole_batch(two_process_results, index):
    objective_doc, model_doc, mixture, steps = cases()[index]
    whole = gradients(objective_doc, model_doc, None, mixture, steps)
    rank0, rank1 = (results[index] for results in two_process_results)
    for reference, got0, got1 in zip(whole["grads"], rank0["grads"], rank1["grads"]):
        assert torch.allclose(got0, reference, atol=1e-6, rtol=1e-5), (reference, got0)
        assert torch.equal(got0, got1)
    if "nlip" in objective_doc.get("noise", ""):
        for key, value in whole["harmonizer"].items():
            assert torch.allclose(rank0["harmonizer"][key].float(), value.float(), atol=1e-6, equal_nan=True), key


def test_dropout_masks_are_replayed_when_a_micro_batch_is_recomputed():
    import contextlib

    from vlp.platform.spec.model import ModelSection
    from vlp.platform.spec.objective import ObjectiveSection
    from vlp.workloads.objectives.factory import build_objective
    from vlp.workloads.train.accumulation import GradientAccumulation

    torch.manual_seed(0)
    image, text, dropout = torch.nn.Linear(6, 4), torch.nn.Linear(5, 4), torch.nn.Dropout(0.5)
    scale = torch.nn.Parameter(torch.tensor(1.0))
    passes = []

    def model(images, texts):
        features = torch.nn.functional.normalize(dropout(image(images)), dim=-1)
        passes.append(features.detach().clone())
        return {"image_features": features, "text_features": torch.nn.functional.normalize(text(texts), dim=-1), "logit_scale": scale.exp()}

    objective = build_objective(ObjectiveSection(), ModelSection())
    GradientAccumulation(model, objective, 2, contextlib.nullcontext()).forward_backward(torch.randn(8, 6), torch.randn(8, 5))
    cached, recomputed = passes[:2], passes[2:]
    # The gradient flows through the recomputed pass: its masks must be those the loss saw in the cached pass.
    for first, again in zip(cached, recomputed):
        assert torch.equal(first, again)
    assert not torch.equal(cached[0], cached[1])


def test_batch_normalisation_is_refused_with_accumulation():
    from vlp.platform.errors import SpecError
    from vlp.workloads.train.accumulation import check_accumulable

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    check_accumulable(model, 1)
    with pytest.raises(SpecError, match=r"^train.accum_steps 2: the model normalises over the batch \(1 is batch normalisation\)"):
        check_accumulable(model, 2)
