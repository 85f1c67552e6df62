"""Accuracy per domain (render style, DomainBed environment): where a model is robust and where it breaks."""

from __future__ import annotations

import torch


def per_domain_accuracy(predictions: torch.Tensor, labels: torch.Tensor, domains: list[str]) -> dict[str, float]:
    """`acc1/<domain>` for each domain, plus their mean and the worst."""
    metrics = {}
    for domain in sorted(set(domains)):
        rows = torch.tensor([d == domain for d in domains])
        metrics[f"acc1/{domain}"] = (predictions[rows] == labels[rows]).float().mean().item()
    values = list(metrics.values())
    return {**metrics, "mean_acc1": sum(values) / len(values), "worst_acc1": min(values)}
