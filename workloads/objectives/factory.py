"""Build the training objective from the `objective:` section and the model's architecture.

`PretrainObjective(outputs) -> loss` consumes the dict every vlp model returns from `forward(images, texts)`:
`image_features`, `text_features`, `logit_scale` (exp'd), optional `logit_bias`; CoCa adds `caption_logits` and
`caption_labels`, PACL adds `image_patches`. It owns no parameters (those live in the model, under DDP), only the
noise harmonizer's state. Swap in your own objective by passing any module with this call signature to the trainer.

Every objective is called as `objective(outputs, targets)`: `targets` holds the batch's supervision from the data
(a grounding box, a class label), empty for pure image-text pretraining. Architectures with objectives of their own
(fusion encoders, grounding, video) are built by the module ARCH_OBJECTIVES names, `build(objective, model)`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import partial

import torch

from vlp.platform.spec.model import ModelSection
from vlp.platform.spec.objective import ObjectiveSection
from vlp.workloads.objectives.captioning import CaptionLoss
from vlp.workloads.objectives.infonce import InfoNCELoss
from vlp.workloads.objectives.nlip import NoiseHarmonizer
from vlp.workloads.objectives.siglip import SigLipLoss

CONTRASTIVE = {"infonce": InfoNCELoss, "siglip": SigLipLoss}
ARCH_OBJECTIVES = {
    "fusion": "vlp.workloads.objectives.fusion_pretraining",
    "flava": "vlp.workloads.objectives.fusion_pretraining",
    "transvg": "vlp.workloads.objectives.box_regression",
    "video": "vlp.workloads.objectives.video_pretraining",
}


@dataclass(frozen=True)
class ContrastiveTerm:
    name: str
    image_key: str
    weight: float
    harmonized: bool


class PretrainObjective(torch.nn.Module):
    def __init__(self, terms: list[tuple[ContrastiveTerm, torch.nn.Module]], harmonizer: NoiseHarmonizer | None = None, caption_weight: float = 0.0):
        super().__init__()
        self.terms = [term for term, _ in terms]
        self.losses = torch.nn.ModuleList(loss for _, loss in terms)
        self.harmonizer = harmonizer
        self.caption_loss = CaptionLoss() if caption_weight > 0 else None
        self.caption_weight = caption_weight
        self._last: dict[str, torch.Tensor] = {}

    @property
    def batch_keys(self) -> set[str]:
        """The per-sample outputs the contrastive terms compare across the whole batch (what accumulation caches)."""
        return {term.image_key for term in self.terms} | {"text_features"}

    def forward(self, outputs: dict, targets: dict | None = None) -> torch.Tensor:
        total = self.contrastive(outputs)
        if self.caption_loss is not None:
            caption = self.caption_loss(outputs["caption_logits"], outputs["caption_labels"])
            self._last["caption"] = caption.detach()
            total = total + self.caption_weight * caption
        return total

    def contrastive(self, outputs: dict) -> torch.Tensor:
        """The weighted contrastive terms: every pair of the batch against every other, so they need the whole batch."""
        total = None
        for term, loss_fn in zip(self.terms, self.losses):
            value = loss_fn(
                outputs[term.image_key], outputs["text_features"], outputs["logit_scale"], outputs.get("logit_bias"),
                weigh=self.harmonizer if term.harmonized else None,
            )
            self._last[term.name] = value.detach()
            weighted = value if term.weight == 1.0 else term.weight * value
            total = weighted if total is None else total + weighted
        return total

    def caption_share(self, outputs: dict, batch_tokens: int) -> torch.Tensor | None:
        """This micro-batch's share of the weighted caption term: its tokens' summed cross-entropy over all the
        batch's caption tokens, so the shares of the micro-batches add up to the caption term of the whole batch."""
        if self.caption_loss is None:
            return None
        return self.caption_weight * self.caption_loss(outputs["caption_logits"], outputs["caption_labels"], reduction="sum") / batch_tokens

    def record_caption(self, value: torch.Tensor) -> None:
        self._last["caption"] = value.detach()

    def metrics(self) -> dict[str, float]:
        """The last step's loss components (only when there is more than one) and the harmonizer's state."""
        values = {f"train/loss_{name}": float(value) for name, value in self._last.items()} if len(self._last) > 1 else {}
        if self.harmonizer is not None:
            values.update(self.harmonizer.metrics())
        return values


def build_objective(objective: ObjectiveSection, model: ModelSection) -> torch.nn.Module:
    if model.arch in ARCH_OBJECTIVES or (model.arch == "multiway" and model.masked_modeling.enabled):
        return importlib.import_module(ARCH_OBJECTIVES.get(model.arch, ARCH_OBJECTIVES["fusion"])).build(objective, model)
    make = partial(CONTRASTIVE[objective.contrastive], objective.local_loss, objective.gather_with_grad)
    harmonizer = NoiseHarmonizer(**objective.nlip.model_dump()) if objective.noise == "nlip" else None
    if model.arch == "pacl":
        from vlp.workloads.models.pacl import pacl_compatibility

        score = partial(pacl_compatibility, temperature=model.pacl.patch_temperature)
        terms = [(ContrastiveTerm("patch_aligned", "image_patches", 1.0, True), make(score=score))]
        if model.pacl.global_loss_weight > 0:
            terms.append((ContrastiveTerm("global", "image_features", model.pacl.global_loss_weight, False), make()))
        return PretrainObjective(terms, harmonizer)
    if model.arch == "coca":
        terms = [(ContrastiveTerm("contrastive", "image_features", model.coca.contrastive_weight, True), make())]
        return PretrainObjective(terms, harmonizer, caption_weight=model.coca.caption_weight)
    return PretrainObjective([(ContrastiveTerm("contrastive", "image_features", 1.0, True), make())], harmonizer)
