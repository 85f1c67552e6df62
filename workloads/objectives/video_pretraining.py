"""The objective of `arch: video`: video-text contrastive, OmniVL's unified contrastive and InternVideo's masked
video reconstruction, weighted by `model.video` (contrastive_weight, unified_contrastive_weight,
masked_video.weight).

It consumes VideoCLIP's outputs (`video_features`, `text_features`, `logit_scale`, optional `logit_bias`,
`masked_video_prediction` and `masked_video_target`) and the batch's targets: `label`, the class of a labelled clip
or image (-1 for a plain caption pair), read by the unified term. The contrastive terms gather across processes
as the image models' do (`objective.local_loss`, `objective.gather_with_grad`).
"""

from __future__ import annotations

import torch

from vlp.platform.errors import SpecError
from vlp.platform.spec.model import ModelSection
from vlp.platform.spec.objective import ObjectiveSection
from vlp.workloads.objectives.factory import CONTRASTIVE
from vlp.workloads.objectives.masked_video import MaskedVideoLoss
from vlp.workloads.objectives.unified_contrastive import UnifiedContrastiveLoss

NO_LABEL = -1


class VideoPretrainingObjective(torch.nn.Module):
    def __init__(
        self,
        contrastive: torch.nn.Module | None = None,
        contrastive_weight: float = 1.0,
        unified: UnifiedContrastiveLoss | None = None,
        unified_weight: float = 0.0,
        masked_video_weight: float = 0.0,
    ):
        super().__init__()
        self.contrastive = contrastive if contrastive_weight > 0 else None
        self.unified = unified if unified_weight > 0 else None
        self.masked_video = MaskedVideoLoss() if masked_video_weight > 0 else None
        if self.contrastive is None and self.unified is None:
            raise ValueError("the video objective needs a contrastive term (contrastive_weight or unified_contrastive_weight > 0)")
        self.weights = {"contrastive": contrastive_weight, "unified_contrastive": unified_weight, "masked_video": masked_video_weight}
        self._last: dict[str, torch.Tensor] = {}

    def forward(self, outputs: dict, targets: dict | None = None) -> torch.Tensor:
        terms = {}
        if self.contrastive is not None:
            terms["contrastive"] = self.contrastive(outputs["video_features"], outputs["text_features"], outputs["logit_scale"], outputs.get("logit_bias"))
        if self.unified is not None:
            labels = (targets or {}).get("label")
            if labels is None:  # data without labels: every sample is a plain pair
                labels = torch.full((outputs["video_features"].shape[0],), NO_LABEL, device=outputs["video_features"].device)
            terms["unified_contrastive"] = self.unified(outputs["video_features"], outputs["text_features"], outputs["logit_scale"], labels.long())
        if self.masked_video is not None:
            terms["masked_video"] = self.masked_video(outputs["masked_video_prediction"], outputs["masked_video_target"])
        self._last = {name: value.detach() for name, value in terms.items()}
        return sum(value if self.weights[name] == 1.0 else self.weights[name] * value for name, value in terms.items())

    def metrics(self) -> dict[str, float]:
        """The last step's loss terms (only when there is more than one), as `train/loss_<term>`."""
        return {f"train/loss_{name}": float(value) for name, value in self._last.items()} if len(self._last) > 1 else {}


def build(objective: ObjectiveSection, model: ModelSection) -> VideoPretrainingObjective:
    video = model.video
    if objective.noise != "none":
        raise SpecError(f"objective.noise {objective.noise}: not supported for model.arch video (use noise: none)")
    if video.unified_contrastive_weight > 0 and objective.contrastive != "infonce":
        raise SpecError("model.video.unified_contrastive_weight: OmniVL's unified contrastive loss is a softmax (InfoNCE) loss; use objective.contrastive: infonce")
    gathering = (objective.local_loss, objective.gather_with_grad)
    return VideoPretrainingObjective(
        contrastive=CONTRASTIVE[objective.contrastive](*gathering),
        contrastive_weight=video.contrastive_weight,
        unified=UnifiedContrastiveLoss(*gathering),
        unified_weight=video.unified_contrastive_weight,
        masked_video_weight=video.masked_video.weight,
    )
