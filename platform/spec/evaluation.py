"""`eval:` — what to measure after training."""

from __future__ import annotations

from pydantic import Field

from vlp.platform.spec.base import Section

DEFAULT_TEMPLATES = (
    "a {}.",
    "a picture of a {}.",
    "a photo of a {}.",
    "an image with a {}.",
    "a drawing of a {}.",
)


class EvalSection(Section):
    """Evaluation on the held-out split."""

    zeroshot: bool = True
    """Zero-shot classification of each image's shape (and colour) with a template ensemble."""
    retrieval: bool = True
    """Image↔text retrieval recall@1/5/10 on the held-out captions."""
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    """Prompt templates; `{}` is replaced by the class name and the embeddings are averaged."""
    batch_size: int = Field(500, ge=1)
    """Evaluation batch size."""
