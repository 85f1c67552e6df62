"""Zero-shot classification: a text classifier from class names × templates, scored against image features."""

from __future__ import annotations

import math

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


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, with_acc5: bool) -> dict[str, float]:
    """CLIP_benchmark's `acc1`, `acc5` and `mean_per_class_recall` (sklearn's balanced accuracy: the mean recall
    of the classes that occur in `labels`). `with_acc5` False gives acc5 NaN, as CLIP_benchmark writes for
    fewer than five classes."""
    # Top-1 from the same topk call as CLIP_benchmark's `accuracy` and the recall from argmax, as there: on
    # tied logits the two can pick different classes.
    top = logits.topk(5 if with_acc5 else 1, dim=1).indices
    count = len(labels)
    acc1 = (top[:, 0] == labels).sum().item() / count
    acc5 = (top == labels[:, None]).any(dim=1).sum().item() / count if with_acc5 else math.nan
    predictions = logits.argmax(dim=1)
    recalls = [(predictions[labels == c] == c).sum().item() / (labels == c).sum().item() for c in labels.unique().tolist()]
    return {"acc1": acc1, "acc5": acc5, "mean_per_class_recall": sum(recalls) / len(recalls)}
