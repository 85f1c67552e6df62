"""`train:` — optimisation and checkpointing."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

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
    compile: bool = False
    """Compile the model with `torch.compile` (the first steps pay for compilation; worth it for long GPU runs)."""
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

    @property
    def total_schedule_steps(self) -> int:
        return self.schedule_steps or self.max_steps  # type: ignore[return-value]
