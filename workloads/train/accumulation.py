"""`train.accum_steps`: one optimizer step over a batch processed in micro-batches, with the gradients of one pass
over the whole batch (open_clip's `accum_freq`, done so that the equality is exact).

A contrastive loss compares every pair of the batch, so it cannot be summed over micro-batches. The step:

1. Each micro-batch's forward pass without gradients; the per-sample outputs the contrastive terms read
   (`PretrainObjective.batch_keys`) are kept, and the random state before each pass (dropout must draw the same
   masks when the pass is recomputed).
2. The contrastive loss over the cached outputs of the whole batch, once, with the cached outputs as leaves: its
   backward gives the gradient of every cached output (and of the logit scale and bias). Stateful parts of the
   objective (NLIP's loss memory and mixture) see the batch once, as without accumulation.
3. Each micro-batch's forward pass again, with gradients, backpropagated from its slice of those output gradients
   (plus its share of per-sample terms such as CoCa's captioning loss). The logit scale and bias enter the model's
   graph in every pass but their gradient is fed in once, in the last pass.

open_clip instead recomputes the whole loss in every pass of step 3, which feeds the logit scale's gradient
`accum_freq` times and updates a stateful loss once per micro-batch; this module avoids both. Gradients are
synchronised across processes only in the last pass (DDP `no_sync`, FSDP `set_requires_gradient_sync`).
"""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

import torch

from vlp.platform.errors import SpecError

# Outputs shared by the whole batch rather than one value per sample.
GLOBAL_OUTPUTS = ("logit_scale", "logit_bias")
# Modules whose output depends on the other samples of their (micro-)batch in training mode.
BATCH_STATISTICS = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.SyncBatchNorm)


# Architectures whose objectives are not the contrastive + captioning terms GradientAccumulation splits exactly
# (a model class can also say so itself with `accumulable = False`, as multiway with masked modeling does).
NOT_ACCUMULABLE = ("fusion", "flava", "transvg", "video")


def check_accumulable(model: torch.nn.Module, accum_steps: int, arch: str = "clip") -> None:
    """Refuse accumulation where micro-batches cannot give the whole batch's gradients."""
    if accum_steps == 1:
        return
    if arch in NOT_ACCUMULABLE or not getattr(model, "accumulable", True):
        raise SpecError(f"train.accum_steps {accum_steps}: not supported for model.arch {arch} (its objective has terms "
                        "that are not split exactly over micro-batches); use train.accum_steps 1")
    normalised = next((name for name, module in model.named_modules() if isinstance(module, BATCH_STATISTICS)), None)
    if normalised is not None:
        raise SpecError(
            f"train.accum_steps {accum_steps}: the model normalises over the batch ({normalised} is batch "
            "normalisation), so micro-batches cannot equal the whole batch; use train.accum_steps 1 or a model without it"
        )


class GradientAccumulation:
    """Forward and backward of one batch in `steps` micro-batches; the caller steps the optimizer afterwards.

    `model(*inputs) -> outputs dict` (the trainer's DDP/FSDP/compiled module), `objective` a PretrainObjective,
    `autocast` the precision context, `no_sync()` a context in which backward passes do not synchronise gradients
    across processes (DDP's `no_sync`; a null context on one process).
    """

    def __init__(self, model: Callable, objective, steps: int, autocast: ContextManager, no_sync: Callable[[], ContextManager] = contextlib.nullcontext):
        self.model = model
        self.objective = objective
        self.steps = steps
        self.autocast = autocast
        self.no_sync = no_sync

    def forward_backward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Gradients of the whole batch's loss accumulated into the parameters' `.grad`; returns the loss (detached)."""
        micro_batches = list(zip(*(tensor.chunk(self.steps) for tensor in inputs)))
        if len(micro_batches) != self.steps:
            raise SpecError(f"train.accum_steps {self.steps} is more than the {inputs[0].shape[0]} samples of this process's batch")
        keys = sorted(self.objective.batch_keys)
        cached: dict[str, list[torch.Tensor]] = {key: [] for key in keys}
        random_states, caption_tokens = [], 0
        captioned = self.objective.caption_loss is not None
        global_outputs: dict[str, torch.Tensor] = {}
        # 1. Cached outputs, no graph kept.
        with torch.no_grad():
            for micro_batch in micro_batches:
                random_states.append(_random_state())
                with self.autocast:
                    outputs = self.model(*micro_batch)
                for key in keys:
                    cached[key].append(outputs[key])
                if captioned:
                    caption_tokens += outputs["caption_labels"].numel()
                global_outputs = {key: outputs[key] for key in GLOBAL_OUTPUTS if key in outputs}
        after_caching = _random_state()
        # 2. The contrastive loss of the whole batch, differentiated with respect to the cached outputs.
        leaves = {key: torch.cat(values).requires_grad_() for key, values in cached.items()}
        leaves.update({key: value.detach().requires_grad_() for key, value in global_outputs.items()})
        with self.autocast:
            loss = self.objective.contrastive(leaves)
        loss.backward()
        sizes = [len(values) for values in cached[keys[0]]]
        output_grads = {key: leaves[key].grad.split(sizes) for key in keys if leaves[key].grad is not None}
        # 3. Recompute each micro-batch with its graph and push the output gradients through it.
        caption_total = torch.zeros((), device=loss.device)
        for index, micro_batch in enumerate(micro_batches):
            last = index == self.steps - 1
            _set_random_state(random_states[index])
            with contextlib.nullcontext() if last else self.no_sync():
                with self.autocast:
                    outputs = self.model(*micro_batch)
                    caption = self.objective.caption_share(outputs, max(caption_tokens, 1)) if captioned else None
                tensors = [outputs[key] for key in output_grads]
                grads = [output_grads[key][index] for key in output_grads]
                if last:
                    global_grads = [(outputs[key], leaves[key].grad) for key in global_outputs if leaves[key].grad is not None]
                    tensors += [tensor for tensor, _ in global_grads]
                    grads += [grad for _, grad in global_grads]
                if caption is not None:
                    tensors.append(caption)
                    grads.append(None)
                    caption_total += caption.detach()
                torch.autograd.backward(tensors, grads)
        _set_random_state(after_caching)
        if captioned:
            self.objective.record_caption(caption_total / self.objective.caption_weight)
            return (loss.detach() + caption_total).detach()
        return loss.detach()


def _random_state() -> tuple:
    cuda = torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return torch.get_rng_state(), cuda


def _set_random_state(state: tuple) -> None:
    cpu, cuda = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda)
