"""The objective of the fusion encoders (`arch: fusion`, `flava`) and of BEiT-3-style masked data modeling on
`arch: multiway`: a weighted sum of one-file losses, each reading its own entries of the model's outputs.

Term names (logged as `train/loss_<name>` every log step) and what they read:
- `contrastive`: InfoNCE (or SigLIP) on `image_features`, `text_features`, `logit_scale` (gathered as `objective:` says);
- `itm`: image-text matching on `itm_logits`, `itm_labels` (itm.py);
- `*mlm` (`mlm`, `unimodal_mlm`; multiway: `text_mlm`, `pair_mlm`): masked language modeling on `<name>_logits`,
  `<name>_labels` (mlm.py);
- `*mim` (`mim`, `unimodal_mim`; multiway: `image_mim`, `pair_mim`): masked image modeling on `<name>_predictions`,
  `<name>_patches` (mim.py);
- `alignment`: FILIP patch-token alignment on `alignment_patches`, `alignment_tokens`, `alignment_token_mask`.
The weights come from `model.fusion` (fusion, flava; architecture defaults filled in by fusion_settings) or from
`model.masked_modeling` (multiway). Like every objective it owns no parameters.
"""

from __future__ import annotations

import torch

from vlp.platform.errors import SpecError
from vlp.platform.spec.model import ModelSection
from vlp.platform.spec.objective import ObjectiveSection
from vlp.workloads.objectives.infonce import InfoNCELoss
from vlp.workloads.objectives.itm import ImageTextMatchingLoss
from vlp.workloads.objectives.mim import MaskedImageModelingLoss
from vlp.workloads.objectives.mlm import MaskedLanguageModelingLoss
from vlp.workloads.objectives.patch_token_alignment import PatchTokenAlignmentLoss
from vlp.workloads.objectives.siglip import SigLipLoss

CONTRASTIVE = {"infonce": InfoNCELoss, "siglip": SigLipLoss}


class FusionPretrainingObjective(torch.nn.Module):
    def __init__(self, weights: dict[str, float], objective: ObjectiveSection, norm_pix_loss: bool = True):
        super().__init__()
        self.weights = dict(weights)
        self.contrastive = CONTRASTIVE[objective.contrastive](objective.local_loss, objective.gather_with_grad)
        self.alignment = PatchTokenAlignmentLoss(objective.local_loss, objective.gather_with_grad)
        self.matching = ImageTextMatchingLoss()
        self.language = MaskedLanguageModelingLoss()
        self.image = MaskedImageModelingLoss(norm_pix_loss)
        self._last: dict[str, torch.Tensor] = {}

    def term(self, name: str, outputs: dict) -> torch.Tensor:
        if name == "contrastive":
            return self.contrastive(outputs["image_features"], outputs["text_features"], outputs["logit_scale"], outputs.get("logit_bias"))
        if name == "itm":
            return self.matching(outputs["itm_logits"], outputs["itm_labels"])
        if name == "alignment":
            return self.alignment(outputs["alignment_patches"], outputs["alignment_tokens"], outputs["alignment_token_mask"], outputs["logit_scale"])
        if name.endswith("mlm"):
            return self.language(outputs[f"{name}_logits"], outputs[f"{name}_labels"])
        if name.endswith("mim"):
            return self.image(outputs[f"{name}_predictions"], outputs[f"{name}_patches"])
        raise KeyError(f"unknown loss term {name!r}")

    def forward(self, outputs: dict, targets: dict | None = None) -> torch.Tensor:
        total = None
        for name, weight in self.weights.items():
            value = self.term(name, outputs)
            self._last[name] = value.detach()
            weighted = weight * value
            total = weighted if total is None else total + weighted
        return total

    def metrics(self) -> dict[str, float]:
        """The last step's loss terms, unweighted."""
        return {f"train/loss_{name}": float(value) for name, value in self._last.items()}


def build(objective: ObjectiveSection, model: ModelSection) -> FusionPretrainingObjective:
    if objective.noise != "none":
        raise SpecError(f"objective.noise {objective.noise}: noise harmonization applies to the contrastive architectures, not arch {model.arch}")
    try:
        if model.arch == "multiway":
            from vlp.workloads.models.multiway import masked_modeling_weights

            return FusionPretrainingObjective(masked_modeling_weights(model.masked_modeling.model_dump()), objective, model.masked_modeling.norm_pix_loss)
        from vlp.workloads.models.fusion import fusion_settings

        settings = fusion_settings(model.arch, model.fusion.model_dump(), model.masked_modeling.model_dump())
    except ValueError as err:
        raise SpecError(str(err)) from None
    return FusionPretrainingObjective(settings.weights(), objective, settings.norm_pix_loss)
