"""The headline metrics of a run: the ones its experiment says sum it up (`headline:`, or its gates' metrics),
recorded as a tag on the run and on its model versions so that listings need no spec to show them."""

from __future__ import annotations

import json

HEADLINE_TAG = "vlp.headline"


def headline_tag(names: tuple[str, ...] | list[str]) -> dict[str, str]:
    return {HEADLINE_TAG: json.dumps(list(names))}


def headline_names(tags: dict[str, str]) -> list[str]:
    try:
        names = json.loads(tags.get(HEADLINE_TAG, "[]"))
    except ValueError:
        return []
    return [str(name) for name in names] if isinstance(names, list) else []


def headline_values(tags: dict[str, str], metrics: dict[str, float]) -> dict[str, float | None]:
    """name -> value (None when the run has not logged it), in the experiment's order."""
    return {name: metrics.get(name) for name in headline_names(tags)}


def describe_headline(values: dict[str, float | None]) -> str:
    """One cell: `zeroshot/shapes/acc1 0.9120  retrieval/shapes/image_retrieval_recall_at_1 0.4410`."""
    return "  ".join(f"{name} {'-' if value is None else f'{value:.4f}'}" for name, value in values.items())
