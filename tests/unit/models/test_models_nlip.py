"""NLIP's noise harmonization: the mixture finds the noisy pairs, the rule is monotone, and the documented
equivalence (softened target == weighted pair) holds."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlp.workloads.objectives.nlip import NoiseHarmonizer, fit_two_gaussians, noise_probability


def losses_with_noise(clean: int = 700, noisy: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    values = torch.cat([0.5 + 0.2 * torch.randn(clean, generator=generator), 3.0 + 0.4 * torch.randn(noisy, generator=generator)])
    return values, torch.cat([torch.zeros(clean), torch.ones(noisy)]).bool()


def test_the_mixture_separates_clean_and_mismatched_pairs():
    values, is_noisy = losses_with_noise()
    mixture = fit_two_gaussians(values, iterations=30)
    (clean_mean, noisy_mean), _, (_, noisy_prior) = mixture.tolist()
    assert abs(clean_mean - 0.5) < 0.05 and abs(noisy_mean - 3.0) < 0.1 and abs(noisy_prior - 0.3) < 0.03
    probability = noise_probability(values, mixture)
    assert ((probability > 0.5) == is_noisy).float().mean() > 0.99


def test_a_long_clean_tail_is_not_called_noise():
    """Clean losses with a hard, wide tail (vague captions) beside 30% mismatched pairs: one shared variance keeps
    the noisy component from swallowing the tail, and p rises monotonically with the loss."""
    generator = torch.Generator().manual_seed(1)
    easy = 1.0 + 0.4 * torch.randn(420, generator=generator)
    hard = 3.0 + 0.6 * torch.randn(280, generator=generator)
    noisy = 7.0 + 1.0 * torch.randn(300, generator=generator)
    values = torch.cat([easy, hard, noisy])
    mixture = fit_two_gaussians(values, iterations=30)
    probability = noise_probability(values, mixture)
    assert probability[:700].mean() < 0.05 and probability[700:].mean() > 0.9
    assert abs(float(mixture[2, 1]) - 0.3) < 0.05
    grid = torch.linspace(-3.0, 12.0, 300)
    on_grid = noise_probability(grid, mixture)
    assert torch.all(on_grid[1:] >= on_grid[:-1])


def test_warmup_then_refresh_every_n_steps_and_state_round_trips():
    harmonizer = NoiseHarmonizer(warmup_steps=3, refresh_every=2, history=64, em_iterations=10)
    values, _ = losses_with_noise(20, 10)
    fitted_after = []
    for step in range(1, 8):
        weights = harmonizer(values, local=False)
        fitted_after.append(harmonizer.fitted)
        if step <= 3:
            assert torch.equal(weights, torch.ones_like(values))  # no fit is used before the warm-up ends
    assert fitted_after == [False, False, True, True, True, True, True]
    assert int(harmonizer.filled) == 64 and int(harmonizer.step) == 7
    again = NoiseHarmonizer(warmup_steps=3, refresh_every=2, history=64, em_iterations=10)
    again.load_state_dict(harmonizer.state_dict())
    again.eval()
    harmonizer.eval()
    assert torch.equal(again(values, local=False), harmonizer(values, local=False))
    assert int(again.step) == 7  # evaluation does not advance the schedule


def test_softened_target_has_the_gradient_of_the_weighted_pair():
    """y = (1-p) onehot + p softmax(logits).detach() gives the gradient of (1-p) * CE(logits, label)."""
    torch.manual_seed(0)
    logits = torch.randn(5, requires_grad=True)
    p = 0.35
    target = (1 - p) * F.one_hot(torch.tensor(2), 5).float() + p * torch.softmax(logits, dim=0).detach()
    soft = -(target * torch.log_softmax(logits, dim=0)).sum()
    (soft_grad,) = torch.autograd.grad(soft, logits)
    (weighted_grad,) = torch.autograd.grad((1 - p) * F.cross_entropy(logits[None], torch.tensor([2])), logits)
    assert torch.allclose(soft_grad, weighted_grad, atol=1e-6)
