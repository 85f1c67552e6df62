"""`train.parallelism`: how the model's parameters, gradients and optimizer state are spread over the processes.

- `ddp`: every process holds everything; DistributedDataParallel averages gradients after each backward pass.
- `fsdp`: FSDP2 (`torch.distributed.fsdp.fully_shard`) shards every transformer block, then what is left (embeddings,
  stems, projections, heads) as one group at the model's root, over all processes: each holds 1/world of the
  parameters, gradients and optimizer state and gathers a block's full parameters only while it runs. With
  `precision: bf16` the gathered parameters are bf16 and gradients are reduced in fp32 (torchtitan's default policy).

Blocks are open_clip's transformer blocks (`…resblocks.N`). A group's parameters are gathered by its module's
`forward`, so only modules every model calls through their forward form groups: blocks and the root. Tower-level
groups were tried and dropped: PACL and the fusion models call a tower's parts (`visual._embeds`,
`visual.transformer`) without its forward, which left those parameters sharded when used. Parameters frozen with
`requires_grad=False` (PACL's backbone) are sharded like the others and get no optimizer state. Models that use one module in two places (MS-CLIP and multiway tie
layers across towers) are sharded as one group: still 1/world of the state per process, but the whole model is
gathered during the forward and backward passes. Scalar parameters (the logit scale and bias), which FSDP2 cannot
shard, stay whole on every process and their gradients are averaged by `average_replicated_gradients`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, ContextManager

import torch
from torch.nn.parallel import DistributedDataParallel

from vlp.platform.errors import SpecError
from vlp.workloads.models.tying import shared_parameters


@dataclass
class ParallelModel:
    """The module the training step calls, and how its backward passes skip gradient synchronisation."""

    module: torch.nn.Module
    """What the step calls: the DDP wrapper, the FSDP-sharded model itself, or the plain model on one process."""
    no_sync: Callable[[], ContextManager]
    sharded: bool = False
    """FSDP over more than one process: state dicts are per-process shards (checkpoints go through DCP)."""
    replicated: list[torch.nn.Parameter] = field(default_factory=list)
    """Parameters FSDP leaves whole on every process (scalars such as the logit scale, which it cannot shard):
    `average_replicated_gradients` averages their gradients after the backward passes of a step."""

    def average_replicated_gradients(self) -> None:
        grads = [parameter.grad for parameter in self.replicated if parameter.grad is not None]
        if not grads:
            return
        import torch.distributed as dist

        flat = torch.cat([grad.reshape(-1) for grad in grads])
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        for grad, averaged in zip(grads, flat.split([grad.numel() for grad in grads])):
            grad.copy_(averaged.view_as(grad))


def transformer_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Every block of every `resblocks` list (open_clip's towers and the towers vlp builds from its blocks)."""
    blocks = []
    for name, module in model.named_modules():
        if name.endswith("resblocks") and isinstance(module, torch.nn.ModuleList):
            blocks.extend(module)
    return blocks


def parallelize(model: torch.nn.Module, parallelism: str, world_size: int, precision: str) -> ParallelModel:
    """Wrap (ddp) or shard in place (fsdp) the model already on its device; the optimizer is built afterwards."""
    if world_size == 1:
        return ParallelModel(model, contextlib.nullcontext)
    if parallelism == "ddp":
        wrapped = DistributedDataParallel(model)
        return ParallelModel(wrapped, wrapped.no_sync)
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if precision == "bf16" else MixedPrecisionPolicy()
    replicated = [parameter for parameter in model.parameters() if parameter.ndim == 0]
    ignored = set(replicated)
    # A model that uses a module in two places (tied layers across towers) is one group, gathered for the whole
    # step: per-block groups own a tied module in one tower only, and the gradients came out wrong (measured on
    # msclip and multiway, see tests/unit/workloads/test_parallelism.py).
    if not shared_parameters(model):
        # Innermost first: each fully_shard call takes the parameters not yet claimed by a group below it.
        for block in transformer_blocks(model):
            fully_shard(block, mp_policy=policy, ignored_params=ignored)
    fully_shard(model, mp_policy=policy, ignored_params=ignored)

    @contextlib.contextmanager
    def no_sync():
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)

    return ParallelModel(model, no_sync, sharded=True, replicated=replicated)


def local_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """This process's part of a parameter or state tensor (a DTensor's local shard, else the tensor itself)."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def state_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes this process holds for parameters and optimizer state (its shards under fsdp)."""
    parameters = sum(local_tensor(p).numel() * p.element_size() for p in model.parameters())
    optimizer_state = sum(
        local_tensor(value).numel() * value.element_size()
        for per_parameter in optimizer.state.values() for value in per_parameter.values() if isinstance(value, torch.Tensor)
    )
    return {"parameters": parameters, "optimizer": optimizer_state}
