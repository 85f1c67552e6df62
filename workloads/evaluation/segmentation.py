"""Zero-shot segmentation from patch–text similarity maps, scored by mIoU against ground-truth masks.

A model takes part by having `patch_text_similarity(images, text_features)` (the `PatchTextSimilarity`
protocol; PACL provides it). A plain CLIP with a ViT image tower (clip, msclip, multiway, CoCa) takes part through
`ViTPatchSimilarity`: each patch token through the tower's final LayerNorm and projection, compared with the text
embeddings by cosine — the baseline PACL's paper measures itself against. Each pixel gets the class whose (bilinearly upsampled) map is highest
there; it is background where that best score, min-max normalised over the image, is below
`background_threshold`. Intersections and unions are summed over the whole dataset, then IoU is
averaged over the classes that occur (background included), as in PASCAL VOC.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer

from vlp.workloads.data.readers import EvalRecord
from vlp.workloads.evaluation.transform import EvalImageTransform
from vlp.workloads.models.vision_tower import vit_tokens

IGNORE = -1
HEATMAP_SAMPLES = 8


@runtime_checkable
class PatchTextSimilarity(Protocol):
    def patch_text_similarity(self, images: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w): similarity of every image patch to each of the C text embeddings."""
        ...


class ViTPatchSimilarity:
    """Patch–text cosine maps of a model whose image tower is an open_clip ViT (`model.visual`): the patch tokens
    get the same final LayerNorm and projection as the pooled token, so they live in the text embedding space."""

    def __init__(self, visual: VisionTransformer):
        self.visual = visual

    @torch.no_grad()
    def patch_text_similarity(self, images: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        patches = F.normalize(vit_tokens(self.visual, images)[:, 1:] @ self.visual.proj, dim=-1)
        similarity = torch.einsum("bpe,te->btp", patches, F.normalize(text_features, dim=-1))
        return similarity.reshape(images.shape[0], text_features.shape[0], *self.visual.grid_size)


def patch_similarity(model) -> PatchTextSimilarity | None:
    """The model's own patch–text maps (PACL), a plain ViT tower's, or None (a ResNet tower has no patch tokens)."""
    if isinstance(model, PatchTextSimilarity):
        return model
    visual = getattr(model, "visual", None)
    plain_vit = isinstance(visual, VisionTransformer) and visual.proj is not None
    if plain_vit and visual.attn_pool is None and not visual.final_ln_after_pool:
        return ViTPatchSimilarity(visual)
    return None


def predict_segmentation(maps: torch.Tensor, size: tuple[int, int], background_threshold: float) -> torch.Tensor:
    """(B, C, h, w) class maps → (B, H, W) labels: 0 background, c + 1 for class c."""
    scores = F.interpolate(maps.float(), size=size, mode="bilinear", align_corners=False)
    best, label = scores.max(dim=1)
    low = best.flatten(1).min(dim=1).values[:, None, None]
    high = best.flatten(1).max(dim=1).values[:, None, None]
    confidence = (best - low) / (high - low).clamp_min(1e-12)
    return torch.where(confidence >= background_threshold, label + 1, torch.zeros_like(label))


def ground_truth(mask: torch.Tensor, object_classes: list[int | None]) -> torch.Tensor:
    """Mask values (0 background, i+1 object i) → labels (0 background, c+1 class c, IGNORE for unknown objects)."""
    lookup = torch.tensor([0] + [IGNORE if c is None else c + 1 for c in object_classes], dtype=torch.long)
    values = mask.clamp(max=len(object_classes))
    labels = lookup[values]
    labels[mask > len(object_classes)] = IGNORE
    return labels


def confusion(predicted: torch.Tensor, truth: torch.Tensor, num_labels: int) -> torch.Tensor:
    """num_labels × num_labels counts, rows = truth, columns = prediction, IGNORE pixels left out."""
    keep = truth != IGNORE
    index = truth[keep] * num_labels + predicted[keep]
    return torch.bincount(index, minlength=num_labels * num_labels).reshape(num_labels, num_labels)


def iou_metrics(counts: torch.Tensor) -> dict[str, float]:
    counts = counts.double()
    intersection = counts.diag()
    union = counts.sum(dim=0) + counts.sum(dim=1) - intersection
    present = union > 0
    iou = intersection[present] / union[present]
    foreground = present.clone()
    foreground[0] = False
    return {
        "miou": iou.mean().item() if present.any() else 0.0,
        "miou_foreground": (intersection[foreground] / union[foreground]).mean().item() if foreground.any() else 0.0,
        "pixel_acc": (intersection.sum() / counts.sum()).item() if counts.sum() > 0 else 0.0,
    }


class SegmentationScorer:
    """A batch hook for `encode_records`: scores each batch's maps against its masks, keeps a few for heatmaps."""

    def __init__(self, model: PatchTextSimilarity, text_features: torch.Tensor, class_index: dict[str, int], transform: EvalImageTransform, background_threshold: float):
        self.model = model
        self.text_features = text_features
        self.class_index = class_index
        self.transform = transform
        self.background_threshold = background_threshold
        self.num_labels = text_features.shape[0] + 1
        self.counts = torch.zeros(self.num_labels, self.num_labels, dtype=torch.long)
        self.scored = 0
        self.samples: list[dict] = []  # pixels, the true class's map and the predicted labels, for drawing

    @torch.no_grad()
    def __call__(self, pixels: torch.Tensor, records: list[EvalRecord]) -> None:
        keep = [i for i, record in enumerate(records) if record.mask is not None]
        if not keep:
            return
        maps = self.model.patch_text_similarity(pixels[keep], self.text_features)
        size = pixels.shape[-2:]
        predicted = predict_segmentation(maps, size, self.background_threshold)
        for row, i in enumerate(keep):
            record = records[i]
            truth = ground_truth(self.transform.mask(record.mask), [self.class_index.get(label) for label in record.object_labels])
            self.counts += confusion(predicted[row], truth, self.num_labels)
            self.scored += 1
            if len(self.samples) < HEATMAP_SAMPLES and record.label in self.class_index:
                target = self.class_index[record.label]
                self.samples.append({"pixels": pixels[i], "map": maps[row, target], "label": record.label, "predicted": predicted[row]})

    def metrics(self) -> dict[str, float]:
        return {**iou_metrics(self.counts), "images": float(self.scored)}
