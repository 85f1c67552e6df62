"""train.parallelism fsdp on two gloo processes: the loss curve of DDP, per-process state that shrinks with the
world size, sharded checkpoints that restore on one process and carry the open_clip export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from parallel_training import everything_on_two_processes, tied_model_gradients, train_one_process
from two_process_gloo import run_on_two_processes

from vlp.platform.layout import RunLayout

STEPS = 4
# Architectures that use one module in both towers, beside plain CLIP.
TIED = ["clip", "msclip", "multiway"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shapes_shards):
    kinds = ("ddp", "fsdp", "fsdp_accumulating", "ddp_accumulating", "ddp_resumed_as_fsdp", "fsdp_grad_checkpointing", "ddp_frozen_backbone", "fsdp_frozen_backbone")
    roots = {kind: str(tmp_path_factory.mktemp(kind)) for kind in kinds}
    per_rank = run_on_two_processes(everything_on_two_processes, roots, shapes_shards, STEPS, TIED)
    return {"roots": roots, **{key: [results[key] for results in per_rank] for key in per_rank[0]}}


@pytest.mark.parametrize("kind", ["fsdp", "fsdp_accumulating", "ddp_accumulating", "fsdp_grad_checkpointing"])
def test_fsdp_and_accumulation_follow_the_ddp_loss_curve(runs, kind):
    ddp, fsdp = runs["ddp"][0]["losses"], runs[kind][0]["losses"]
    assert sorted(ddp) == list(range(1, STEPS + 1)) and ddp.keys() == fsdp.keys()
    for step in ddp:
        assert fsdp[step] == pytest.approx(ddp[step], rel=1e-4), (step, ddp, fsdp)
    assert len(set(ddp.values())) == STEPS


def test_fsdp_with_a_frozen_backbone_trains_only_the_head_and_follows_ddp(runs, shapes_shards):
    ddp, fsdp = runs["ddp_frozen_backbone"][0], runs["fsdp_frozen_backbone"][0]
    assert ddp["losses"].keys() == fsdp["losses"].keys() and len(ddp["losses"]) == STEPS
    for step, loss in ddp["losses"].items():
        assert fsdp["losses"][step] == pytest.approx(loss, rel=1e-4), (step, ddp["losses"], fsdp["losses"])
    # PACL's frozen CLIP keeps its initial weights; only the patch embedder and the temperature move (and hold state).
    from vlp.platform.spec.model import ModelSection
    from vlp.workloads.models.factory import build_model

    torch.manual_seed(0)
    initial = build_model(ModelSection(arch="pacl", preset="shapes-vit-micro", pacl={"freeze_backbone": True})).model.state_dict()
    frozen = [name for name in initial if name.startswith("backbone.") and "logit_" not in name]
    assert frozen and all(torch.equal(fsdp["model"][name], initial[name]) for name in frozen)
    assert not any(name in fsdp["exp_avg"] for name in frozen)
    assert any(not torch.equal(fsdp["model"][name], initial[name]) for name in initial if name.startswith("patch_embedder"))


def test_fsdp_holds_about_half_the_state_per_process(runs):
    ddp = runs["ddp"][0]["bytes"]
    for rank in (0, 1):
        fsdp = runs["fsdp"][rank]["bytes"]
        # Shards are padded to equal sizes and the scalars (logit scale) stay whole on each process.
        assert 0.45 < fsdp["parameters"] / ddp["parameters"] < 0.55, (fsdp, ddp)
        assert 0.45 < fsdp["optimizer"] / ddp["optimizer"] < 0.55, (fsdp, ddp)


def test_a_sharded_checkpoint_restores_on_one_process(runs, shapes_shards):
    root = runs["roots"]["fsdp"]
    manifest = json.loads((Path(RunLayout(root, "run").checkpoints) / "latest.json").read_text())
    assert manifest["step"] == STEPS
    assert ".metadata" in manifest["shards"] and {"__0_0.distcp", "__1_0.distcp"} <= manifest["shards"].keys()
    written = runs["fsdp"][0]
    # The open_clip export beside the checkpoint holds the gathered weights.
    from safetensors.torch import load_file

    exported = load_file(f"{manifest['beside']}/open_clip_model.safetensors")
    assert torch.equal(exported["logit_scale"], written["model"]["logit_scale"])
    assert torch.equal(exported["visual.conv1.weight"], written["model"]["visual.conv1.weight"])
    # One process, no sharding: the same weights and optimizer state, resharded by DCP.
    restored = train_one_process(root, shapes_shards, "fsdp", STEPS)
    for name, value in written["model"].items():
        assert torch.equal(restored["model"][name], value), name
    for name, value in written["exp_avg"].items():
        assert torch.equal(restored["exp_avg"][name], value), name


def test_a_ddp_checkpoint_resumes_sharded(runs):
    written, resumed = runs["ddp"][0], runs["ddp_resumed_as_fsdp"][0]
    assert resumed["losses"] == {}  # nothing left to train: only the restore ran
    for name, value in written["model"].items():
        assert torch.equal(resumed["model"][name], value), name
    for name, value in written["exp_avg"].items():
        assert torch.equal(resumed["exp_avg"][name], value), name


@pytest.mark.parametrize("arch", TIED)
def test_sharded_gradients_equal_one_process_on_the_whole_batch(runs, arch):
    # Tied layers are one group at the root: per-block groups gave wrong gradients for them (see parallelism.py).
    whole = tied_model_gradients(None, arch)["grads"]
    for rank in (0, 1):
        sharded = runs["tied"][rank][arch]["grads"]
        assert sharded.keys() == whole.keys()
        for name, value in whole.items():
            assert torch.allclose(sharded[name], value, atol=2e-5, rtol=1e-4), (arch, name)


def test_bf16_gathers_parameters_in_bf16(runs):
    # MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32): the towers compute in bf16, gradients land in fp32.
    assert runs["bf16"][0]["feature_dtype"] == torch.bfloat16
    assert all(grad.dtype == torch.float32 for grad in runs["bf16"][0]["grads"].values())
