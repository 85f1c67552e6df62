"""Two gloo processes give the same update as one process on the whole batch, for every gathering mode of every
contrastive loss, with and without NLIP, and for the CoCa and PACL objectives."""

from __future__ import annotations

import pytest
import torch

from gradient_workers import distributed_gradients, gradients
from two_process_gloo import run_on_two_processes

MODES = [
    {"local_loss": True, "gather_with_grad": True},
    {"local_loss": False, "gather_with_grad": True},
    {"local_loss": False, "gather_with_grad": False},
]
# A fitted mixture in the range of these losses, so NLIP's weights are neither all 0 nor all 1.
MIXTURE = torch.tensor([[1.0, 2.5], [0.5, 0.5], [0.6, 0.4]])
NLIP_EVERY_STEP = {"warmup_steps": 1, "refresh_every": 1, "history": 64, "em_iterations": 10}


def cases():
    result = []
    for contrastive in ("infonce", "siglip"):
        for mode in MODES:
            result.append(({"contrastive": contrastive, **mode}, {"arch": "clip"}, None, 1))
            result.append(({"contrastive": contrastive, **mode, "noise": "nlip"}, {"arch": "clip"}, MIXTURE, 1))
        # Two steps with a refit after each: the mixture is fitted to the gathered losses of both processes.
        result.append(({"contrastive": contrastive, "noise": "nlip", "nlip": NLIP_EVERY_STEP}, {"arch": "clip"}, None, 2))
        result.append(({"contrastive": contrastive}, {"arch": "pacl", "pacl": {"global_loss_weight": 0.5}}, None, 1))
        result.append(({"contrastive": contrastive, "local_loss": False}, {"arch": "pacl"}, None, 1))
    result.append(({}, {"arch": "coca", "coca": {"caption_weight": 1.5}}, None, 1))
    return result


@pytest.fixture(scope="module")
def two_process_results():
    return run_on_two_processes(distributed_gradients, cases())


@pytest.mark.parametrize("index", range(len(cases())), ids=[f"{o}-{m['arch']}-steps{s}" for o, m, _, s in cases()])
def test_two_processes_match_one(two_process_results, index):
    objective_doc, model_doc, mixture, steps = cases()[index]
    single = gradients(objective_doc, model_doc, None, mixture, steps)
    rank0, rank1 = (results[index] for results in two_process_results)
    for expected, got0, got1 in zip(single["grads"], rank0["grads"], rank1["grads"]):
        assert torch.allclose(got0, expected, atol=1e-6, rtol=1e-5), (expected, got0)
        assert torch.equal(got0, got1)
    if "nlip" in objective_doc.get("noise", ""):
        for key, value in single["harmonizer"].items():
            assert torch.allclose(rank0["harmonizer"][key].float(), value.float(), atol=1e-6, equal_nan=True), key
    if not objective_doc.get("local_loss", True) or steps > 1 or model_doc["arch"] == "coca":
        return
    # With local loss each process reports its rows' mean; the mean over processes is the global loss.
    assert torch.allclose((rank0["losses"][0] + rank1["losses"][0]) / 2, single["losses"][0], atol=1e-6)


def test_gathering_without_grad_needs_the_full_matrix():
    from vlp.platform.errors import SpecError
    from vlp.platform.spec import spec_from_dict

    with pytest.raises(SpecError, match="local_loss needs objective.gather_with_grad"):
        spec_from_dict({"name": "x", "train": {"max_steps": 1}, "objective": {"local_loss": True, "gather_with_grad": False}})
