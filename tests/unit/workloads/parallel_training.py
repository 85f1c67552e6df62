"""Workers for the parallelism tests: the trainer on each process of a gloo group (importable, for spawn)."""

from __future__ import annotations

import torch

from vlp.platform.layout import RunLayout
from vlp.platform.spec import spec_from_dict
from vlp.platform.tracking.protocol import NullTracker
from vlp.workloads.train.parallelism import state_bytes
from vlp.workloads.train.trainer import PretrainTrainer, TrainInputs


class LossRecorder(NullTracker):
    def __init__(self):
        self.losses: dict[int, float] = {}

    def log_metrics(self, metrics, step):
        if "train/loss" in metrics:
            self.losses[step] = float(metrics["train/loss"])


def spec(parallelism: str, max_steps: int, processes: int, arch: str = "clip", precision: str = "fp32", accum_steps: int = 1,
         model: dict | None = None, train: dict | None = None):
    return spec_from_dict({
        "name": "parallelism",
        "model": {"arch": arch, "preset": "shapes-vit-micro", **(model or {})},
        "train": {"batch_size": 16, "max_steps": max_steps, "warmup_steps": 1, "lr": 1e-3, "log_every": 1,
                  "checkpoint_every": 100, "parallelism": parallelism, "precision": precision,
                  "accum_steps": accum_steps, **(train or {})},
        "resources": {"nodes": 1, "procs_per_node": processes},
    })


def train(rank: int, root: str, shards: list[str], parallelism: str, max_steps: int, processes: int, accum_steps: int = 1, **options) -> dict:
    """Train (resuming from `root`'s checkpoints if any); the loss per step, per-process state bytes, final weights.
    `options`: `arch`, and `model` / `train` fields beside the defaults."""
    recorder = LossRecorder()
    trainer = PretrainTrainer(spec(parallelism, max_steps, processes, accum_steps=accum_steps, **options), TrainInputs(RunLayout(root, "run"), shards, lambda: recorder))
    trainer.train()
    from vlp.workloads.train.sharded_state import full_model_state

    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    optimizer = get_optimizer_state_dict(trainer.model, trainer.optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {
        "losses": recorder.losses,
        "bytes": state_bytes(trainer.model, trainer.optimizer),
        "model": {name: value.clone() for name, value in full_model_state(trainer.model).items()},
        "exp_avg": {name: state["exp_avg"].clone() for name, state in optimizer.get("state", {}).items()},
    }


def resume_elsewhere(rank: int, written: str, root: str, shards: list[str], parallelism: str, steps: int) -> dict:
    """Resume a copy of the run under `written` with another parallelism (it stops at once: `steps` are done)."""
    import shutil

    import torch.distributed as dist

    if rank == 0:
        shutil.copytree(written, root, dirs_exist_ok=True)
    dist.barrier()
    return train(rank, root, shards, parallelism, steps, 2)


def train_one_process(root: str, shards: list[str], parallelism: str, max_steps: int) -> dict:
    return train(0, root, shards, parallelism, max_steps, 1)


__all__ = ["train", "train_one_process", "torch"]


def tied_model_gradients(rank: int | None, arch: str, parallelism: str = "fsdp", precision: str = "fp32") -> dict:
    """Whole gradients of one InfoNCE step of a shapes-vit-micro `arch` model, on one process (rank None) over the
    whole batch or sharded on this process over its half."""
    from vlp.platform.spec.model import ModelSection
    from vlp.platform.spec.objective import ObjectiveSection
    from vlp.workloads.models.factory import build_model
    from vlp.workloads.objectives.factory import build_objective
    from vlp.workloads.train.parallelism import parallelize

    torch.manual_seed(0)
    model = build_model(ModelSection(arch=arch, preset="shapes-vit-micro")).model
    generator = torch.Generator().manual_seed(1)
    images, texts = torch.randn(8, 3, 32, 32, generator=generator), torch.randint(1, 400, (8, 24), generator=generator)
    parallel = None
    if rank is not None:
        parallel = parallelize(model, parallelism, 2, precision)
        images, texts = images[rank * 4:(rank + 1) * 4], texts[rank * 4:(rank + 1) * 4]
    outputs = (model if parallel is None else parallel.module)(images, texts)
    build_objective(ObjectiveSection(), ModelSection(arch=arch))(outputs).backward()
    if parallel is not None:
        parallel.average_replicated_gradients()
    full = {name: (p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad).clone() for name, p in model.named_parameters() if p.grad is not None}
    return {"grads": full, "feature_dtype": outputs["image_features"].dtype}


def everything_on_two_processes(rank: int, roots: dict, shards: list[str], steps: int, tied_archs: list[str]) -> dict:
    """One spawn for all two-process cases (each spawn costs seconds of imports)."""
    return {
        "ddp": train(rank, roots["ddp"], shards, "ddp", steps, 2),
        "fsdp": train(rank, roots["fsdp"], shards, "fsdp", steps, 2),
        "fsdp_accumulating": train(rank, roots["fsdp_accumulating"], shards, "fsdp", steps, 2, accum_steps=4),
        "ddp_accumulating": train(rank, roots["ddp_accumulating"], shards, "ddp", steps, 2, accum_steps=4),
        "ddp_resumed_as_fsdp": resume_elsewhere(rank, roots["ddp"], roots["ddp_resumed_as_fsdp"], shards, "fsdp", steps),
        "fsdp_grad_checkpointing": train(rank, roots["fsdp_grad_checkpointing"], shards, "fsdp", steps, 2, train={"grad_checkpointing": True}),
        **{f"{parallelism}_frozen_backbone": train(rank, roots[f"{parallelism}_frozen_backbone"], shards, parallelism, steps, 2, arch="pacl",
                                                   model={"pacl": {"freeze_backbone": True}}) for parallelism in ("ddp", "fsdp")},
        "tied": {arch: tied_model_gradients(rank, arch) for arch in tied_archs},
        "bf16": tied_model_gradients(rank, "clip", precision="bf16"),
    }
