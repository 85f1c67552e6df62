"""Linear probe on frozen features: multinomial logistic regression fitted by full-batch L-BFGS.

As in CLIP's protocol, the L2 penalty is searched on a validation split (the best validation accuracy
wins; ties go to the stronger penalty, which generalises more safely), then the classifier is refitted
on train + validation with that penalty and scored once on the test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vlp.workloads.evaluation.zeroshot import classification_metrics


@dataclass(frozen=True)
class ProbeSplits:
    train_features: torch.Tensor
    train_labels: torch.Tensor
    val_features: torch.Tensor
    val_labels: torch.Tensor
    test_features: torch.Tensor
    test_labels: torch.Tensor


def fit_logistic_regression(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, weight_decay: float, max_iter: int = 100, start: tuple[torch.Tensor, torch.Tensor] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (D×C) and bias (C) minimising mean cross-entropy + weight_decay/2 · ‖W‖², from `start` or zeros."""
    features = features.double()
    weight = (start[0].clone() if start else torch.zeros(features.shape[1], num_classes, dtype=torch.float64)).requires_grad_(True)
    bias = (start[1].clone() if start else torch.zeros(num_classes, dtype=torch.float64)).requires_grad_(True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, tolerance_grad=1e-6, tolerance_change=1e-10, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(features @ weight + bias, labels) + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    # One thread: on matrices this small the intra-op pool's hand-offs cost far more than the arithmetic
    # (measured 100× slower with 2 threads on 2 busy cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.enable_grad():
            optimizer.step(closure)
    finally:
        torch.set_num_threads(threads)
    return weight.detach(), bias.detach()


def predict_logits(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return (features.double() @ weight + bias).float()


def linear_probe(splits: ProbeSplits, num_classes: int, weight_decays: tuple[float, ...]) -> dict[str, float]:
    """CLIP_benchmark's `lp_acc1`, `lp_acc5`, `lp_mean_per_class_recall` on the test split and the chosen
    `weight_decay`, plus `val_acc1`, the validation accuracy that chose it."""
    weight, bias, best_decay, best_accuracy = fit_searched_probe(splits, num_classes, weight_decays)
    # CLIP_benchmark's linear probe reports acc5 only when the test labels reach class index 5.
    with_acc5 = num_classes >= 5 and int(splits.test_labels.max()) >= 5
    metrics = classification_metrics(predict_logits(splits.test_features, weight, bias), splits.test_labels, with_acc5)
    return {**{f"lp_{key}": value for key, value in metrics.items()}, "weight_decay": best_decay, "val_acc1": best_accuracy}


def fit_searched_probe(splits: ProbeSplits, num_classes: int, weight_decays: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """Weights and bias refitted on train + validation with the penalty that scored best on validation; that
    penalty and its validation accuracy."""
    best_decay, best_accuracy, fitted = None, -1.0, None
    # Strongest penalty first, each fit starting from the last: the weakly regularised fits converge in few steps.
    for weight_decay in sorted(weight_decays, reverse=True):
        fitted = weight, bias = fit_logistic_regression(splits.train_features, splits.train_labels, num_classes, weight_decay, start=fitted)
        accuracy = (predict_logits(splits.val_features, weight, bias).argmax(dim=1) == splits.val_labels).float().mean().item()
        if accuracy > best_accuracy:
            best_decay, best_accuracy = weight_decay, accuracy
    features = torch.cat([splits.train_features, splits.val_features])
    labels = torch.cat([splits.train_labels, splits.val_labels])
    weight, bias = fit_logistic_regression(features, labels, num_classes, best_decay)
    return weight, bias, best_decay, best_accuracy


def split_indices(count: int, fractions: tuple[float, float], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A seeded permutation cut into train / validation / test by the first two fractions (test gets the rest)."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    train_end = int(round(fractions[0] * count))
    val_end = train_end + int(round(fractions[1] * count))
    return order[:train_end], order[train_end:val_end], order[val_end:]
