"""Box regression for visual grounding (TransVG): L1 on the normalised (cx, cy, w, h) plus generalized IoU.

    loss = l1_weight * sum_coords |b - b*|  +  giou_weight * (1 - GIoU(b, b*))      (means over the batch)

as TransVG (and DETR) weigh them: 5 and 2 by default. `outputs["boxes"]` and `targets["box"]` are [B, 4] normalised
(x0, y0, x1, y1); GIoU and IoU are torchvision's.
"""

from __future__ import annotations

import torch
from torchvision.ops import box_convert, box_iou, generalized_box_iou_loss

from vlp.platform.spec.model import ModelSection
from vlp.platform.spec.objective import ObjectiveSection


class BoxRegressionLoss(torch.nn.Module):
    def __init__(self, l1_weight: float = 5.0, giou_weight: float = 2.0):
        super().__init__()
        self.l1_weight = l1_weight
        self.giou_weight = giou_weight
        self._last: dict[str, torch.Tensor] = {}

    def forward(self, outputs: dict, targets: dict) -> torch.Tensor:
        predicted, true = outputs["boxes"].float(), targets["box"].to(outputs["boxes"].device).float()
        l1 = (box_convert(predicted, "xyxy", "cxcywh") - box_convert(true, "xyxy", "cxcywh")).abs().sum(dim=1).mean()
        giou = generalized_box_iou_loss(predicted, true, reduction="mean")
        with torch.no_grad():
            self._last = {"l1": l1.detach(), "giou": giou.detach(), "iou": box_iou(predicted, true).diagonal().mean()}
        return self.l1_weight * l1 + self.giou_weight * giou

    def metrics(self) -> dict[str, float]:
        """The last step's terms and the mean IoU of its predicted boxes with the true ones."""
        return {
            "train/loss_l1": float(self._last["l1"]), "train/loss_giou": float(self._last["giou"]), "train/iou": float(self._last["iou"]),
        } if self._last else {}


def build(objective: ObjectiveSection, model: ModelSection) -> BoxRegressionLoss:
    return BoxRegressionLoss(model.transvg.l1_weight, model.transvg.giou_weight)
