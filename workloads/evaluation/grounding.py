"""Visual grounding: a box for every (image, referring expression), scored by Acc@0.5 IoU and mean IoU.

Predictors:
- `arch: transvg` regresses the box (`predict_boxes`).
- A dual encoder with patch–text similarity maps (`segmentation.patch_similarity`: CLIP with a ViT tower, PACL) runs
  the baseline TransVG is measured against: the expression's similarity map over the patches, upsampled to the
  input's pixels, min-max normalised and thresholded at `eval.background_threshold` (as zero-shot segmentation
  thresholds it); the box is that of the connected region (scipy's 4-connectivity labelling) that holds the
  best-matching pixel.

Boxes are predicted on the model's input (the eval transform) and mapped back to the stored image's pixels exactly
(`vlp.workloads.data.box_geometry`), where they are compared with the data's boxes. IoU is torchvision's. Results
are one CLIP_benchmark-style result per dataset (task `visual_grounding`): `acc@0.5`, `miou`, `num_expressions`,
and `acc@0.5/<kind>` where the expressions name their kind.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from vlp.platform.spec.evaluation import EvalSection
from vlp.workloads.data.box_geometry import BoxMapping, eval_box_mapping
from vlp.workloads.data.readers import EvalRecord, EvalSource
from vlp.workloads.evaluation import plots
from vlp.workloads.evaluation.encode import decoded, encode_texts, image_transform
from vlp.workloads.evaluation.publish import make_result
from vlp.workloads.evaluation.segmentation import PatchTextSimilarity, patch_similarity
from vlp.workloads.models.factory import BuiltModel

if TYPE_CHECKING:
    from vlp.workloads.evaluation.suite import SuiteOutput

TASK = "visual_grounding"
IOU_THRESHOLD = 0.5
ACCURACY = "acc@0.5"
PLOTTED_IMAGES = 8

# (input pixels [B, 3, H, W], the image row of each expression [N], the expressions) -> [N, 4] normalised input boxes
BoxPredictor = Callable[[torch.Tensor, torch.Tensor, list[str]], torch.Tensor]


@dataclass
class GroundedSet:
    """Every expression's predicted and true pixel box in its stored image, with its kind where the data says."""

    predicted: list[torch.Tensor] = field(default_factory=list)
    true: list[torch.Tensor] = field(default_factory=list)
    kinds: list[str | None] = field(default_factory=list)
    images: int = 0
    drawn: list[dict] = field(default_factory=list)


def grounding_predictor(built: BuiltModel, threshold: float) -> tuple[BoxPredictor | None, str]:
    """The model's box predictor and its name in messages; (None, why) when the model can ground nothing."""
    model = built.model
    if hasattr(model, "predict_boxes"):
        return lambda pixels, rows, texts: model.predict_boxes(pixels[rows], built.tokenizer(texts).to(pixels.device)).float(), "box regression"
    similarity = patch_similarity(model)
    if similarity is None:
        return None, f"a {built.arch} model has no patch–text similarity maps for the patch-region baseline (needs a ViT image tower)"
    return PatchRegionBaseline(built, similarity, threshold), "patch-region baseline"


class PatchRegionBaseline:
    """The box of the connected high-similarity region around the patch that best matches the expression."""

    def __init__(self, built: BuiltModel, similarity: PatchTextSimilarity, threshold: float, batch_size: int = 500):
        self.built = built
        self.similarity = similarity
        self.threshold = threshold
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, pixels: torch.Tensor, rows: torch.Tensor, texts: list[str]) -> torch.Tensor:
        text_features = encode_texts(self.built, texts, self.batch_size).to(pixels.device)
        maps = self.similarity.patch_text_similarity(pixels, text_features)  # every image against every expression
        return region_boxes(maps[rows, torch.arange(len(texts))], tuple(pixels.shape[-2:]), self.threshold)


def region_boxes(maps: torch.Tensor, size: tuple[int, int], threshold: float) -> torch.Tensor:
    """[N, h, w] similarity maps -> [N, 4] normalised (x0, y0, x1, y1) boxes of the input of `size` (H, W): each map
    upsampled bilinearly to pixels, min-max normalised, kept where >= `threshold`; the box of the connected kept
    region that holds the maximum (the whole image for a flat map)."""
    from scipy import ndimage

    height, width = size
    scores = F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0].cpu()
    boxes = torch.empty(len(maps), 4)
    for row, score in enumerate(scores):
        low, high = score.min(), score.max()
        if high <= low:
            boxes[row] = torch.tensor([0.0, 0.0, 1.0, 1.0])
            continue
        kept = ((score - low) / (high - low) >= threshold).numpy()
        regions, _ = ndimage.label(kept)
        best = divmod(int(score.argmax()), width)
        ys, xs = (regions == regions[best]).nonzero()
        boxes[row] = torch.tensor([xs.min() / width, ys.min() / height, (xs.max() + 1) / width, (ys.max() + 1) / height])
    return boxes


def grounding_metrics(predicted: torch.Tensor, true: torch.Tensor, kinds: list[str | None] | None = None) -> dict[str, float]:
    """Acc@0.5 (share of expressions whose box has IoU >= 0.5 with the true one), mean IoU, and Acc@0.5 per kind."""
    iou = box_iou(predicted.double(), true.double()).diagonal() if len(true) else torch.empty(0, dtype=torch.double)
    hits = iou >= IOU_THRESHOLD
    metrics = {ACCURACY: hits.double().mean().item() if len(iou) else 0.0, "miou": iou.mean().item() if len(iou) else 0.0, "num_expressions": len(iou)}
    for kind in sorted({kind for kind in kinds or () if kind}):
        chosen = torch.tensor([k == kind for k in kinds])
        metrics[f"{ACCURACY}/{kind}"] = hits[chosen].double().mean().item()
    return metrics


def image_size(image: bytes) -> tuple[int, int]:
    """(height, width) of an encoded image from its header."""
    from PIL import Image

    width, height = Image.open(io.BytesIO(image)).size
    return height, width


@torch.no_grad()
def ground_records(built: BuiltModel, predict: BoxPredictor, records, batch_size: int, limit: int | None = None, draw: int = 0) -> GroundedSet:
    """Predict a box for every referring expression of the records (in batches of about `batch_size` expressions)."""
    transform = image_transform(built)
    grounded = GroundedSet()
    pending: list[tuple[EvalRecord, BoxMapping]] = []

    def flush() -> None:
        pixels = torch.stack([decoded(transform, record) for record, _ in pending])
        rows = torch.tensor([row for row, (record, _) in enumerate(pending) for _ in record.refexps])
        texts = [refexp["expression"] for record, _ in pending for refexp in record.refexps]
        boxes = predict(pixels, rows, texts).cpu().double()
        start = 0
        for record, mapping in pending:
            count = len(record.refexps)
            predicted = mapping.to_image(boxes[start : start + count])
            true = torch.tensor([refexp["box"] for refexp in record.refexps], dtype=torch.double)
            grounded.predicted.append(predicted)
            grounded.true.append(true)
            grounded.kinds.extend(refexp.get("kind") for refexp in record.refexps)
            if len(grounded.drawn) < draw:
                grounded.drawn.append({"image": record.image, "expression": record.refexps[0]["expression"], "predicted": predicted[0], "true": true[0]})
            start += count
        pending.clear()

    queued = 0
    for count, record in enumerate(records):
        if limit is not None and count >= limit:
            break
        if not record.refexps:
            continue
        pending.append((record, eval_box_mapping(*image_size(record.image), built.preprocess)))
        grounded.images += 1
        queued += len(record.refexps)
        if queued >= batch_size:
            flush()
            queued = 0
    if pending:
        flush()
    return grounded


@torch.no_grad()
def run_grounding_suite(
    built: BuiltModel,
    source: EvalSource,
    section: EvalSection,
    model_name: str,
    plot_dir: Path | None = None,
    prompts=None,
    probe_source: EvalSource | None = None,
    dataset_name: str | None = None,
    limit: int | None = None,
    pretrained: str = "",
) -> "SuiteOutput":
    """Grounding of `source`'s referring expressions, with `run_suite`'s signature and output (`prompts` and
    `probe_source` do not apply to grounding)."""
    from vlp.workloads.evaluation.suite import SuiteOutput

    built.model.eval()
    output = SuiteOutput()
    dataset = dataset_name or source.name
    predict, method = grounding_predictor(built, section.background_threshold)
    if predict is None:
        output.skipped[TASK] = method
        return output
    draw = plot_dir is not None and section.plots
    grounded = ground_records(built, predict, source.read(), section.batch_size, limit, PLOTTED_IMAGES if draw else 0)
    if not grounded.true:
        output.skipped[TASK] = "the images have no referring expressions with boxes"
        return output
    metrics = grounding_metrics(torch.cat(grounded.predicted), torch.cat(grounded.true), grounded.kinds)
    output.results.append(make_result(dataset, model_name, pretrained, TASK, metrics, section.language, grounded.images, metrics["num_expressions"]))
    if draw:
        title = f"grounding ({method}): {model_name} on {dataset}; predicted red, true green"
        output.plots.append(plots.grounding_boxes(grounded.drawn, title, plot_dir / f"{dataset}-grounding-boxes.png"))
    return output


@torch.no_grad()
def predict_boxes_for(built: BuiltModel, images: list[bytes], expressions: list[str], threshold: float = EvalSection().background_threshold) -> list[list[float]]:
    """One pixel box (x0, y0, x1, y1) of the given image per (image, expression) row: what the served model answers."""
    if len(images) != len(expressions):
        raise ValueError(f"{len(images)} images and {len(expressions)} expressions: give one expression per image")
    if not images:
        return []
    built.model.eval()
    predict, why = grounding_predictor(built, threshold)
    if predict is None:
        raise ValueError(why)
    records = [EvalRecord(key=str(row), image=image, refexps=({"expression": text, "box": [0, 0, 0, 0]},)) for row, (image, text) in enumerate(zip(images, expressions))]
    grounded = ground_records(built, predict, records, batch_size=len(records))
    return [box.tolist() for boxes in grounded.predicted for box in boxes]
