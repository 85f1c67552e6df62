"""InDiGo: a student image encoder that also sees the frozen VL image feature as an extra token, trained with
two heads — a linear class head and a cosine head against frozen text embeddings of
"a photo of a {class} in {domain} domain" for every source class × source domain — with the loss
(1 − w)·CE(class head) + w·CE(cosine head), w = 0.5 by default. Only the class head predicts at test time, so the
held-out domain's name is never needed."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vlp.platform.spec.dg import IndigoSection
from vlp.workloads.dg.method import StudyContext, embed_dim
from vlp.workloads.dg.student import StudentEncoder
from vlp.workloads.evaluation.encode import encode_texts
from vlp.workloads.evaluation.prompts import prompt_name

MAX_LOGIT_SCALE = 100.0


class IndigoStudent(nn.Module):
    def __init__(self, visual: nn.Module, features: int, classes: int, text_bank: torch.Tensor, logit_scale: float, finetune: bool):
        super().__init__()
        self.encoder = StudentEncoder(visual, inject_dim=text_bank.shape[1])
        self.encoder.visual.requires_grad_(finetune)
        self.class_head = nn.Linear(features, classes)
        # The student starts as a copy of the VL tower, so its output already lives in the text space: start at identity.
        self.text_projection = nn.Linear(features, text_bank.shape[1])
        with torch.no_grad():
            self.text_projection.weight.copy_(torch.eye(text_bank.shape[1], features))
            self.text_projection.bias.zero_()
        self.register_buffer("text_bank", text_bank)
        self.logit_scale = logit_scale

    def forward(self, images: torch.Tensor, frozen_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder(images, frozen_features)
        projected = F.normalize(self.text_projection(features), dim=-1)
        return self.class_head(features), self.logit_scale * projected @ self.text_bank.T


class Indigo:
    name = "indigo"

    def __init__(self, context: StudyContext, settings: IndigoSection):
        self.context = context
        self.cosine_weight = settings.cosine_weight
        data, sources = context.data, context.splits.source_domains
        prompts = [settings.domain_prompt.format(classname=prompt_name(name), domain=domain) for name in data.classnames for domain in sources]
        text_bank = encode_texts(context.pretrained, prompts, batch_size=256)  # row = class * len(sources) + domain
        scale = min(float(context.pretrained.model.logit_scale.exp()), MAX_LOGIT_SCALE)
        self.module = IndigoStudent(context.pretrained.model.visual, embed_dim(context.pretrained), len(data.classnames), text_bank, scale, context.finetune)
        # Row of `data` -> position of its domain among the sources (the held-out domain's rows never train).
        self.source_position = torch.full((len(data.domain_names),), -1, dtype=torch.long)
        for position, name in enumerate(sources):
            self.source_position[data.domain_names.index(name)] = position

    def inputs(self, rows: torch.Tensor) -> tuple:
        return self.context.data.pixels(rows), self.context.frozen_features[rows]

    def loss(self, outputs, rows: torch.Tensor) -> torch.Tensor:
        class_logits, cosine_logits = outputs
        labels = self.context.data.labels[rows]
        pair = labels * len(self.context.splits.source_domains) + self.source_position[self.context.data.domains[rows]]
        labels, pair = labels.to(class_logits.device), pair.to(class_logits.device)
        return (1 - self.cosine_weight) * F.cross_entropy(class_logits, labels) + self.cosine_weight * F.cross_entropy(cosine_logits, pair)

    def class_logits(self, outputs) -> torch.Tensor:
        return outputs[0]
