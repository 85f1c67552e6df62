"""Two gloo processes give the same update as one process on the whole batch for the fusion objectives: masks and
ITM negatives are drawn for the global batch, negatives' tokens are gathered with gradients, and the masked terms
average over the masked items of every process."""

from __future__ import annotations

import pytest
import torch

from fusion_workers import CASES, distributed_gradients, gradients
from two_process_gloo import run_on_two_processes


@pytest.fixture(scope="module")
def two_process_results():
    return run_on_two_processes(distributed_gradients, CASES)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[case[0]["arch"] for case in CASES])
def test_two_processes_match_one(two_process_results, index):
    model_doc, objective_doc = CASES[index]
    single = gradients(model_doc, objective_doc, None)
    rank0, rank1 = (results[index] for results in two_process_results)
    assert len(single["grads"]) == len(rank0["grads"])
    for expected, got0, got1 in zip(single["grads"], rank0["grads"], rank1["grads"]):
        assert torch.allclose(got0, expected, atol=2e-6, rtol=1e-4), (expected - got0).abs().max()
        assert torch.equal(got0, got1)
    # Each process's loss is its share; their mean is the one-process loss.
    assert torch.allclose((rank0["loss"] + rank1["loss"]) / 2, single["loss"], atol=1e-5)
    assert any(grad.abs().sum() > 0 for grad in single["grads"])
