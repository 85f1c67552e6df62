"""`train:` — optimisation and checkpointing."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from vlp.platform.errors import SpecError
from vlp.platform.spec.base import Section


class TrainSection(Section):
    """How long and how to train."""

    batch_size: int = Field(256, ge=2, le=65_536)
    """Global batch size, split evenly over all processes."""
    max_steps: int | None = Field(None, ge=1)
    """Stop after this many optimizer steps (set this or `max_seconds`)."""
    max_seconds: float | None = Field(None, gt=0)
    """Stop after this much training wall time; all ranks agree on the step so the run is consistent."""
    lr: float = Field(2e-3, gt=0, le=10)
    """Peak learning rate of AdamW."""
    weight_decay: float = Field(0.1, ge=0)
    """AdamW weight decay (not applied to gains, biases and the logit scale)."""
    warmup_steps: int = Field(50, ge=0)
    """Linear warm-up steps before the cosine decay."""
    schedule_steps: int | None = Field(None, ge=1)
    """Length of the cosine schedule; defaults to `max_steps` (required when only `max_seconds` is set)."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """Compute precision: `bf16` runs the forward pass under bf16 autocast."""
    checkpoint_every: int = Field(200, ge=1)
    """Write a checkpoint every N steps (and at the end)."""
    log_every: int = Field(10, ge=1)
    """Log loss, learning rate, logit scale and samples/s every N steps."""
    threads_per_proc: int | None = Field(None, ge=1)
    """torch intra-op threads per process; default: CPU cores divided by processes on the node."""
    fused_optimizer: bool = True
    """AdamW's fused implementation (one kernel over all parameters; on CPU ~3× faster per optimizer step than the
    per-tensor-list `foreach` one, see docs/performance.md); `false` uses `foreach`."""
    compile: bool | None = None
    """Compile the model with `torch.compile` (the first steps pay for compilation). Unset: on for CUDA runs long
    enough to earn it back (see vlp.workloads.train.device_path), off on CPU."""
    decode_on_device: bool | None = None
    """Decode JPEG training images on the GPU in one batched nvJPEG call per batch (loader workers only read the headers
    and draw the crops). Unset: on for CUDA runs when torchvision has nvJPEG and the augmentation is crops only (no
    colour jitter or grey-scale), off on CPU; `true` also works on CPU (decoding then moves from the loader workers into
    the training process)."""
    accum_steps: int = Field(1, ge=1, le=4096)
    """Split each process's share of `batch_size` into this many micro-batches (for batches that do not fit in
    memory at once); the optimizer still steps once per `batch_size` samples. Contrastive losses see the whole
    batch, as open_clip's `accum_freq`: features of every micro-batch are computed without gradients first, the loss
    is computed over all of them, then each micro-batch's forward pass is recomputed with gradients and backpropagated
    through that loss. The gradients equal one pass over the whole batch (models with batch normalisation, whose
    statistics depend on the micro-batch, are refused)."""
    parallelism: Literal["ddp", "fsdp"] = "ddp"
    """`ddp`: every process holds the whole model and optimizer state; `fsdp`: FSDP2 shards parameters, gradients and
    optimizer state over the processes (per transformer block, the rest as one group at the root; as one group for models that tie
    layers across towers; bf16 parameters with fp32 gradient reduction when `precision` is `bf16`), checkpoints are
    written sharded by every process and restore at any world size and under either parallelism."""
    grad_checkpointing: bool = False
    """Recompute transformer activations in the backward pass instead of storing them: less memory, more compute
    (for batches that do not fit otherwise; open_clip's ResNet image tower does not support it and is left as is)."""

    @model_validator(mode="after")
    def _needs_an_end(self) -> "TrainSection":
        if self.max_steps is None and self.max_seconds is None:
            raise ValueError("set train.max_steps or train.max_seconds")
        if self.max_steps is None and self.schedule_steps is None:
            raise ValueError("train.schedule_steps is required when only train.max_seconds is set")
        return self

    def per_process_batch(self, world_size: int) -> int:
        """Samples each of `world_size` processes takes per step; one-line SpecError when the batch does not split."""
        if self.batch_size % world_size:
            raise SpecError(
                f"train.batch_size {self.batch_size} is not divisible by the {world_size} training processes "
                f"(resources.nodes x procs_per_node); use a multiple of {world_size}"
            )
        per_process = self.batch_size // world_size
        if per_process % self.accum_steps:
            raise SpecError(
                f"train.accum_steps {self.accum_steps} does not divide the {per_process} samples each of the {world_size} "
                f"processes takes per step (train.batch_size / processes); use a divisor of {per_process}"
            )
        return per_process

    @property
    def total_schedule_steps(self) -> int:
        return self.schedule_steps or self.max_steps  # type: ignore[return-value]
