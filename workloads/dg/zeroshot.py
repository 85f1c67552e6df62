"""Zero-shot: the pretrained VL model classifies with its text encoder and class prompts; nothing is trained."""

from __future__ import annotations

import torch

from vlp.workloads.dg.method import StudyContext
from vlp.workloads.evaluation.prompts import prompt_name
from vlp.workloads.evaluation.zeroshot import build_classifier


def zero_shot_logits(context: StudyContext, templates: tuple[str, ...]) -> torch.Tensor:
    """Logits for every row of the data: frozen image features against the template-ensemble classifier."""
    model = context.pretrained.model
    names = [prompt_name(name) for name in context.data.classnames]
    classifier = build_classifier(model.encode_text, context.pretrained.tokenizer, names, list(templates))
    return context.frozen_features @ classifier
