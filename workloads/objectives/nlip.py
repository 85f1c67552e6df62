"""NLIP-style noise harmonization (Huang et al., "NLIP: Noise-robust Language-Image Pre-training"): estimate each
pair's probability of being mismatched from its loss, and let a likely-mismatched pair teach less.

The rule, exactly:

1. Per-pair loss. InfoNCE: l_i = (CE(image_i -> texts, i) + CE(text_i -> images, i)) / 2. SigLIP: the positive
   term l_i = -log sigmoid(z_ii). Computed on the current batch, detached.
2. Memory. The losses of every pair of every process (gathered, so all processes hold the same values) go into a
   ring buffer of the last `history` values.
3. Mixture. For the first `warmup_steps` steps nothing else happens (plain contrastive training; deep networks fit
   clean pairs before noisy ones, so their losses separate only after a while). At step `warmup_steps` and then
   every `refresh_every` steps, a two-component 1-D Gaussian mixture with one shared variance is fitted to the
   buffer by EM (`em_iterations` iterations, means initialised at the 25th and 90th percentiles). The component
   with the higher mean is "noisy". The shared variance matters: clean losses have a long right tail (captions
   that say little, such as "a crescent", match many images), and a free-variance noisy component swallows it. On
   the shapes data with 30% swapped captions the free fit called ~60% of the pairs noisy (clean pairs at p ~ 0.4 on
   average), the shared-variance fit 20-27% (clean pairs at p ~ 0.02, 89-95% of pairs on the right side of 0.5).
4. Noise probability. For each pair of a later step, p_i = the posterior of the noisy component at l_i under the
   last fit. With a shared variance the log-odds are linear in the loss, so p_i rises monotonically with l_i.
5. Softened target. Pair i's target moves from its own caption towards the model's current (detached) prediction:
   y_i = (1 - p_i) * onehot(i) + p_i * softmax(logits_i). The cross-entropy gradient is softmax - y =
   (1 - p_i) * (softmax - onehot(i)), exactly the gradient of (1 - p_i) * l_i, so the implementation multiplies
   pair i's terms by w_i = 1 - p_i (InfoNCE: both directions of pair i; SigLIP: its positive term). A pair that is
   surely mismatched (p_i = 1) stops pulling its image and caption together; it still serves as a negative for
   the others. The loss stays a mean over all N pairs (weights are not renormalised).

The state (step, buffer, mixture) is a set of buffers, so it travels with the objective's state dict.
"""

from __future__ import annotations

import math

import torch

from vlp.workloads.objectives.gather import gather_values


def fit_two_gaussians(values: torch.Tensor, iterations: int) -> torch.Tensor:
    """EM for a 1-D mixture of two Gaussians with one shared variance: [mean, std, prior] x (clean, noisy)."""
    x = values.double()
    variance = x.var().clamp(min=1e-12)
    floor = 1e-6 * variance + 1e-12
    means = torch.stack([torch.quantile(x, 0.25), torch.quantile(x, 0.9)])
    priors = torch.full((2,), 0.5, dtype=torch.float64)
    for _ in range(iterations):
        responsibilities = torch.softmax(_log_densities(x, means, variance.expand(2), priors), dim=1)
        counts = responsibilities.sum(dim=0) + 1e-12
        means = (responsibilities * x[:, None]).sum(dim=0) / counts
        variance = (responsibilities * (x[:, None] - means) ** 2).sum() / x.numel() + floor
        priors = counts / counts.sum()
    order = torch.argsort(means)
    return torch.stack([means[order], variance.sqrt().expand(2), priors[order]]).float()


def _log_densities(x, means, variances, priors):
    return -0.5 * (x[:, None] - means) ** 2 / variances - 0.5 * torch.log(2 * math.pi * variances) + torch.log(priors)


def noise_probability(losses: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """Step 4: the posterior of the high-loss component. `mixture` as fit_two_gaussians returns it."""
    means, stds, priors = mixture.double()
    posterior = torch.softmax(_log_densities(losses.double(), means, stds**2, priors), dim=1)[:, 1]
    return posterior.to(losses.dtype)


class NoiseHarmonizer(torch.nn.Module):
    """Callable as `weigh(pair_losses, local)` by the contrastive losses; returns w_i = 1 - p_i (step 5)."""

    def __init__(self, warmup_steps: int = 100, refresh_every: int = 50, history: int = 4096, em_iterations: int = 30):
        super().__init__()
        self.warmup_steps = warmup_steps
        self.refresh_every = refresh_every
        self.em_iterations = em_iterations
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("history", torch.zeros(history))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("cursor", torch.zeros((), dtype=torch.long))
        self.register_buffer("mixture", torch.full((3, 2), float("nan")))
        self.last_noise_probability: torch.Tensor | None = None

    @property
    def fitted(self) -> bool:
        return not bool(torch.isnan(self.mixture).any())

    def forward(self, pair_losses: torch.Tensor, local: bool) -> torch.Tensor:
        probability = noise_probability(pair_losses, self.mixture.to(pair_losses.device)) if self.fitted else torch.zeros_like(pair_losses)
        if self.training:
            self._remember(gather_values(pair_losses) if local else pair_losses)
            self.step += 1
            step = int(self.step)
            if step >= self.warmup_steps and (step - self.warmup_steps) % self.refresh_every == 0:
                self.mixture.copy_(fit_two_gaussians(self._remembered(), self.em_iterations))
        self.last_noise_probability = probability.mean().detach()
        return 1.0 - probability

    def _remember(self, losses: torch.Tensor) -> None:
        size = self.history.numel()
        losses = losses.detach().float().to(self.history.device)[-size:]
        positions = (int(self.cursor) + torch.arange(losses.numel(), device=self.history.device)) % size
        self.history[positions] = losses
        self.cursor.fill_((int(self.cursor) + losses.numel()) % size)
        self.filled.fill_(min(size, int(self.filled) + losses.numel()))

    def _remembered(self) -> torch.Tensor:
        return self.history[: int(self.filled)]

    def metrics(self) -> dict[str, float]:
        values = {}
        if self.last_noise_probability is not None:
            values["nlip/mean_noise_probability"] = float(self.last_noise_probability)
        if self.fitted:
            (clean_mean, noisy_mean), _, (_, noisy_prior) = self.mixture.tolist()
            values.update({"nlip/clean_loss_mean": clean_mean, "nlip/noisy_loss_mean": noisy_mean, "nlip/noisy_prior": noisy_prior})
        return values
