"""Zero-shot classification: a text classifier from class names × templates, scored against image features."""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def build_classifier(encode_text, tokenizer, classnames: list[str], templates: list[str]) -> torch.Tensor:
    """One column per class: encode every template, normalise, average, renormalise (CLIP's ensemble)."""
    columns = []
    for classname in classnames:
        tokens = tokenizer([template.format(classname) for template in templates])
        embeddings = F.normalize(encode_text(tokens), dim=-1)
        columns.append(F.normalize(embeddings.mean(dim=0), dim=-1))
    return torch.stack(columns, dim=1)


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, float]:
    """acc1, acc5 (top-k capped at the number of classes) and mean per-class recall."""
    top = logits.topk(min(5, num_classes), dim=1).indices
    acc1 = (top[:, 0] == labels).float().mean().item()
    acc5 = (top == labels[:, None]).any(dim=1).float().mean().item()
    predictions = top[:, 0]
    recalls = [(predictions[labels == c] == c).float().mean().item() for c in range(num_classes) if (labels == c).any()]
    return {"acc1": acc1, "acc5": acc5, "mean_per_class_recall": sum(recalls) / len(recalls)}
