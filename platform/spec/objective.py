"""`objective:` — the contrastive loss, how it is computed across processes, and noise harmonization."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from vlp.platform.spec.base import Section


class NlipOptions(Section):
    """NLIP-style noise harmonization: each pair's probability of being mismatched, from a two-component mixture
    fitted to recent per-pair losses, scales down that pair's contrastive term (see workloads/objectives/nlip.py)."""

    warmup_steps: int = Field(100, ge=1)
    """Steps of plain contrastive training before the first fit: clean pairs are learnt first (memorization effect),
    so only after a warm-up do mismatched pairs stand out by their loss."""
    refresh_every: int = Field(50, ge=1)
    """Refit the mixture every N steps after the warm-up."""
    history: int = Field(4096, ge=64, le=10_000_000)
    """How many of the most recent per-pair losses (all processes together) the mixture is fitted to."""
    em_iterations: int = Field(30, ge=1, le=1000)
    """EM iterations per fit of the two-component Gaussian mixture."""


class ObjectiveSection(Section):
    """The training objective. Architecture-specific terms (CoCa's captioning loss, PACL's patch alignment) are
    configured under `model:`; this section chooses the contrastive loss every architecture uses."""

    contrastive: Literal["infonce", "siglip"] = "infonce"
    """`infonce`: symmetric softmax cross-entropy over the batch (CLIP); `siglip`: a sigmoid loss on every image-text
    pair with a learnable bias (the model gets SigLIP's initial temperature 10 and bias -10)."""
    local_loss: bool = True
    """Each process scores only its own rows against all gathered columns instead of the full global matrix: same
    gradients, 1/world_size of the memory. Needs `gather_with_grad`."""
    gather_with_grad: bool = True
    """Gradients flow back through the all-gather into every process's features. Without it the gathered copies are
    constants and each process's own features get world_size x the gradient, so the update DDP averages still
    equals a single-process run."""
    noise: Literal["none", "nlip"] = "none"
    """Noisy-caption handling: `nlip` estimates each pair's probability of being mismatched from its loss and
    down-weights its contrastive term accordingly."""
    nlip: NlipOptions = NlipOptions()
    """Noise-harmonization settings (only with `noise: nlip`)."""

    @model_validator(mode="after")
    def _consistent(self) -> "ObjectiveSection":
        if self.local_loss and not self.gather_with_grad:
            raise ValueError(
                "objective.local_loss needs objective.gather_with_grad: without it the gradients from other "
                "processes' rows never reach this process's features (set local_loss: false to gather without grad)"
            )
        if "nlip" in self.changed_fields() and self.noise != "nlip":
            raise ValueError("objective.nlip applies only with objective.noise: nlip")
        return self
