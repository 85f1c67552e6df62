"""The evaluation battery for clips: text↔video retrieval, zero-shot video classification per class family, linear
probes, the modality gap and a time-reversal check; results in CLIP_benchmark's layout (`publish.make_result`).

Each labelled field of the clips (the moving-shapes generator labels `motion`, `shape` and `colour`) is a class
family scored on its own, as dataset `<dataset>-<field>` (`zeroshot/shapes-video-motion/acc1`): what needs time
(motion) apart from what one frame shows (appearance). Motion classes come in pairs that differ only in the order of
the frames (moving left / moving right, up / down, growing / shrinking); `pair_acc1/<a>_vs_<b>` scores each pair as
a two-way choice on the clips of those two classes (chance 0.5), and `temporal_order/<dataset>/reversed_cosine` is
the cosine between a clip's embedding and its time-reversed clip's: 1 for a model blind to frame order.

Clips go through the model's `encode_video` ([B, T, 3, H, W], normalised like images). A plain image model has
none: its frames are encoded one by one, normalised and averaged (CLIP4Clip's meanP), the baseline every video
model is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from vlp.platform.errors import VlpUserError
from vlp.platform.spec.evaluation import EvalSection
from vlp.workloads.evaluation import plots, video_plots
from vlp.workloads.evaluation.encode import encode_texts, image_transform
from vlp.workloads.evaluation.linear_probe import ProbeSplits, linear_probe, split_indices
from vlp.workloads.evaluation.modality_gap import modality_gap
from vlp.workloads.evaluation.prompts import Prompts, normalise, prompt_name, section_templates
from vlp.workloads.evaluation.publish import make_result
from vlp.workloads.evaluation.retrieval import retrieval_metrics
from vlp.workloads.evaluation.suite import SuiteOutput, _encode_each_once
from vlp.workloads.evaluation.zeroshot import build_classifier, classification_metrics
from vlp.workloads.models.factory import BuiltModel
from vlp.workloads.models.video_temporal import mean_of_unit_frames

MOTION_FIELD = "motion"
# Class families in the order they are reported: what needs time first, then what one frame shows.
FAMILY_FIELDS = (MOTION_FIELD, "shape", "colour")
# Motion classes that differ only in the order of the frames.
ORDER_PAIRS = (("moving left", "moving right"), ("moving up", "moving down"), ("growing", "shrinking"))
# Prompt templates per family where the experiment names none; the motion classes read as verb phrases.
FAMILY_TEMPLATES = {
    MOTION_FIELD: ("a video of something {}.", "something {}.", "a clip of an object {}."),
    "shape": ("a video of a {}.", "a {}.", "a clip of a {}."),
    "colour": ("a video of something {}.", "a {} object.", "a clip of a {} thing."),
}
PLOTTED_CLIPS = 9
PLOTTED_FRAMES = 8

# A clip source yields records; this turns one into its frames: uint8 T×3×H×W at the model's input size.
ClipFrames = Callable[[object], torch.Tensor]


@dataclass(frozen=True)
class ClassFamily:
    field: str
    classnames: tuple[str, ...]
    templates: tuple[str, ...]

    def dataset(self, dataset: str) -> str:
        return f"{dataset}-{self.field}"


@dataclass
class EncodedClips:
    """Normalised clip features (N×D), the time-reversed clips' features, and row for row what each record said."""

    features: torch.Tensor
    reversed_features: torch.Tensor
    keys: list[str] = field(default_factory=list)
    captions: list[tuple[str, ...]] = field(default_factory=list)
    labels: dict[str, list[str | None]] = field(default_factory=dict)
    samples: list[torch.Tensor] = field(default_factory=list)
    """The first clips' model inputs (T×3×H×W), for the frames figure."""


def clip_encoder(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Videos [B, T, 3, H, W] -> [B, D]: the model's `encode_video`, or for an image model CLIP4Clip's meanP (each
    frame's normalised embedding, averaged over time)."""
    if hasattr(model, "encode_video"):
        return model.encode_video

    def frame_mean(videos: torch.Tensor) -> torch.Tensor:
        return mean_of_unit_frames(model.encode_image(videos.flatten(0, 1)).float().view(*videos.shape[:2], -1))

    return frame_mean


@torch.no_grad()
def encode_clips(
    built: BuiltModel, records: Iterable, clip_frames: ClipFrames, labels_of: Callable[[object], dict[str, str | None]],
    batch_size: int, limit: int | None = None, keep_samples: int = 0,
) -> EncodedClips:
    encode = clip_encoder(built.model)
    normalise_pixels = image_transform(built).normalise
    encoded = EncodedClips(torch.empty(0), torch.empty(0))
    forward, backward, pending = [], [], []

    def flush() -> None:
        videos = torch.stack(pending)
        forward.append(F.normalize(encode(videos).float(), dim=-1))
        backward.append(F.normalize(encode(videos.flip(1)).float(), dim=-1))
        pending.clear()

    for count, record in enumerate(records):
        if limit is not None and count >= limit:
            break
        pixels = normalise_pixels(clip_frames(record))
        pending.append(pixels)
        if len(encoded.samples) < keep_samples:
            encoded.samples.append(pixels)
        encoded.keys.append(record.key)
        encoded.captions.append(tuple(record.all_captions))
        for name, value in labels_of(record).items():
            encoded.labels.setdefault(name, [None] * (len(encoded.keys) - 1)).append(value)
        for values in encoded.labels.values():
            values.extend([None] * (len(encoded.keys) - len(values)))
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    encoded.features = torch.cat(forward) if forward else torch.empty(0, 0)
    encoded.reversed_features = torch.cat(backward) if backward else torch.empty(0, 0)
    return encoded


def class_families(encoded: EncodedClips, known_classes: dict[str, tuple[str, ...]], section: EvalSection, prompts: Prompts | None) -> list[ClassFamily]:
    """A family per labelled field the clips carry: class names from `known_classes` (the dataset's manifest) or else
    the labels seen, in sorted order; templates from `prompts`, the experiment's `eval.templates`, or the family's."""
    families = []
    fields = [name for name in FAMILY_FIELDS if name in encoded.labels] + sorted(set(encoded.labels) - set(FAMILY_FIELDS))
    for name in fields:
        seen = {label for label in encoded.labels[name] if label is not None}
        if not seen:
            continue
        classnames = tuple(known_classes.get(name) or sorted(seen))
        if "templates" in section.changed_fields() or name not in FAMILY_TEMPLATES:
            templates = section_templates(section.templates)
        else:
            templates = FAMILY_TEMPLATES[name]
        # `vlp eval --templates` (or a dataset's own templates) arrive in `prompts`; its defaults are the section's.
        if prompts is not None and prompts.templates and tuple(prompts.templates) != section_templates(section.templates):
            templates = tuple(prompts.templates)
        families.append(ClassFamily(name, classnames, templates))
    return families


def family_labels(encoded: EncodedClips, family: ClassFamily) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of the clips labelled with one of the family's classes, and those labels as class indices."""
    index = {normalise(name): position for position, name in enumerate(family.classnames)}
    pairs = [(row, index.get(normalise(label))) for row, label in enumerate(encoded.labels[family.field]) if label is not None]
    pairs = [(row, label) for row, label in pairs if label is not None]
    return torch.tensor([row for row, _ in pairs], dtype=torch.long), torch.tensor([label for _, label in pairs], dtype=torch.long)


def per_class_recall(predictions: torch.Tensor, labels: torch.Tensor, classnames: tuple[str, ...]) -> dict[str, float]:
    """`recall/<class>` for every class that has clips (the class name with `_` for spaces)."""
    return {
        f"recall/{key_part(classnames[c])}": (predictions[labels == c] == c).double().mean().item()
        for c in sorted(labels.unique().tolist())
    }


def order_pair_accuracy(logits: torch.Tensor, labels: torch.Tensor, classnames: tuple[str, ...]) -> dict[str, float]:
    """For each pair in ORDER_PAIRS the family has clips of: the two-way choice between the pair's prompts on the
    clips of those two classes (`pair_acc1/<a>_vs_<b>`, chance 0.5; a tie goes to the first), and their mean
    (`order_pair_acc1`)."""
    index = {normalise(name): position for position, name in enumerate(classnames)}
    metrics = {}
    for first, second in ORDER_PAIRS:
        a, b = index.get(first), index.get(second)
        if a is None or b is None:
            continue
        rows = (labels == a) | (labels == b)
        if not rows.any():
            continue
        choice = torch.where(logits[rows, b] > logits[rows, a], b, a)
        metrics[f"pair_acc1/{key_part(first)}_vs_{key_part(second)}"] = (choice == labels[rows]).double().mean().item()
    if metrics:
        metrics["order_pair_acc1"] = sum(metrics.values()) / len(metrics)
    return metrics


def key_part(name: str) -> str:
    return normalise(name).replace(" ", "_")


@torch.no_grad()
def run_video_suite(
    built: BuiltModel,
    source,
    section: EvalSection,
    model_name: str,
    plot_dir: Path | None = None,
    prompts: Prompts | None = None,
    probe_source=None,
    dataset_name: str | None = None,
    limit: int | None = None,
    pretrained: str = "",
    clip_frames: ClipFrames | None = None,
) -> SuiteOutput:
    """As `vlp.workloads.evaluation.suite.run_suite`, for a clip source (`vlp.workloads.data.readers` video
    formats); works for video models and, frame by frame, for plain image models. `probe_source` trains the
    linear probes (default: a split of `source`). `clip_frames` replaces the decoder (tests)."""
    built.model.eval()
    dataset = dataset_name or source.name
    output = SuiteOutput()
    draw = plot_dir is not None and section.plots
    frames_of = clip_frames or default_clip_frames(built, source)

    def add(task: str, metrics: dict, dataset_label: str, num_clips: int, num_captions: int = 0) -> None:
        output.results.append(make_result(dataset_label, model_name, pretrained, task, metrics, section.language, num_clips, num_captions))

    encoded = encode_clips(built, source.read(), frames_of, record_labels, section.batch_size, limit, PLOTTED_CLIPS * 4 if draw else 0)
    families = class_families(encoded, known_classes(source), section, prompts)
    predictions: dict[str, torch.Tensor] = {}

    if section.zeroshot:
        for family in families:
            rows, labels = family_labels(encoded, family)
            if not len(rows):
                output.skipped[f"zeroshot_classification/{family.field}"] = f"no clip has one of the {family.field} classes"
                continue
            classifier = build_classifier(built.model.encode_text, built.tokenizer, [prompt_name(name) for name in family.classnames], list(family.templates))
            logits = encoded.features[rows] @ classifier
            predicted = logits.argmax(dim=1)
            predictions[family.field] = torch.full((len(encoded.keys),), -1, dtype=torch.long).index_put_((rows,), predicted)
            metrics = classification_metrics(logits, labels, with_acc5=len(family.classnames) >= 5)
            metrics |= per_class_recall(predicted, labels, family.classnames) | order_pair_accuracy(logits, labels, family.classnames)
            add("zeroshot_classification", metrics, family.dataset(dataset), len(labels))
            if draw:
                title = f"zero-shot {family.field}: {model_name} on {dataset}"
                output.plots.append(plots.confusion_matrix(predicted, labels, list(family.classnames), title, plot_dir / f"{family.dataset(dataset)}-confusion-matrix.png"))
        if not families:
            output.skipped["zeroshot_classification"] = "the clips carry no labels"

    has_captions = bool(encoded.captions) and all(encoded.captions)
    if section.retrieval:
        if has_captions:
            texts = [caption for captions in encoded.captions for caption in captions]
            text_to_clip = torch.tensor([clip for clip, captions in enumerate(encoded.captions) for _ in captions])
            scores = retrieval_metrics(encoded.features, _encode_each_once(built, texts, section.batch_size), text_to_clip)
            # retrieval_metrics calls the visual side images; here text→video is video retrieval.
            metrics = {key.replace("image_retrieval", "video_retrieval"): value for key, value in scores.items()}
            add("zeroshot_retrieval", metrics, dataset, len(encoded.captions), len(texts))
            if draw:
                output.plots.append(plots.recall_at_k(scores, f"retrieval (image = video): {model_name} on {dataset}", plot_dir / f"{dataset}-recall-at-k.png"))
        else:
            output.skipped["zeroshot_retrieval"] = "the clips have no captions"

    if section.linear_probe:
        probe = _encode_probe_source(built, probe_source, frames_of, section, limit) if probe_source is not None else None
        for family in families:
            splits = _probe_splits(encoded, probe, family, section)
            if splits is None:
                output.skipped[f"linear_probe/{family.field}"] = "too few labelled clips for train, validation and test splits"
                continue
            metrics = linear_probe(splits, len(family.classnames), section.probe_weight_decays)
            add("linear_probe", {**metrics, "num_train_images": len(splits.train_labels) + len(splits.val_labels)}, family.dataset(dataset), len(splits.test_labels))

    if section.modality_gap:
        if has_captions:
            texts = encode_texts(built, [captions[0] for captions in encoded.captions], section.batch_size)
            add("modality_gap", modality_gap(encoded.features, texts), dataset, len(texts), len(texts))
        else:
            output.skipped["modality_gap"] = "the clips have no captions"

    if len(encoded.keys):
        cosine = (encoded.features * encoded.reversed_features).sum(dim=-1)
        add("temporal_order", {"reversed_cosine": cosine.mean().item(), "reversed_cosine_min": cosine.min().item()}, dataset, len(cosine))

    for switch, task in (("segmentation", "zeroshot_segmentation"), ("per_domain", "domain_accuracy")):
        if getattr(section, switch):
            output.skipped[task] = "not measured on clips"

    if draw and encoded.samples:
        output.plots.append(_frames_figure(built, encoded, families, predictions, f"{model_name} on {dataset}", plot_dir / f"{dataset}-clip-frames.png"))
    return output


def _frames_figure(built: BuiltModel, encoded: EncodedClips, families: list[ClassFamily], predictions: dict[str, torch.Tensor], title: str, path: Path) -> Path:
    """One clip per motion class where the first clips have them (else the first clips), true / predicted per family."""
    rows, seen = [], set()
    motion = encoded.labels.get(MOTION_FIELD)
    for row in range(len(encoded.samples)):
        label = motion[row] if motion else None
        if motion is None or label not in seen:
            seen.add(label)
            rows.append(row)
    rows = rows[:PLOTTED_CLIPS]
    unnormalise = image_transform(built).unnormalise
    clips, captions = [], []
    for row in rows:
        frames = encoded.samples[row]
        steps = torch.linspace(0, len(frames) - 1, min(PLOTTED_FRAMES, len(frames))).round().long()
        clips.append(torch.stack([torch.from_numpy(unnormalise(frames[step])) for step in steps]).numpy())
        parts = []
        for family in families:
            true = encoded.labels[family.field][row]
            guess = predictions.get(family.field)
            guessed = family.classnames[guess[row]] if guess is not None and guess[row] >= 0 else "-"
            parts.append(f"{family.field}: {true} → {guessed}" + ("" if guessed in ("-", true) else " ✗"))
        captions.append("   ".join(parts) or encoded.keys[row])
    return video_plots.clip_frames(clips, captions, f"clips (true → predicted): {title}", path)


def _encode_probe_source(built, probe_source, frames_of, section, limit) -> EncodedClips:
    return encode_clips(built, probe_source.read(), frames_of, record_labels, section.batch_size, limit)


def _probe_splits(encoded: EncodedClips, probe: EncodedClips | None, family: ClassFamily, section: EvalSection) -> ProbeSplits | None:
    rows, labels = family_labels(encoded, family)
    features = encoded.features[rows]
    if probe is None:
        fit, val, test = split_indices(len(rows), section.probe_split)
        if min(len(fit), len(val), len(test)) == 0:
            return None
        return ProbeSplits(features[fit], labels[fit], features[val], labels[val], features[test], labels[test])
    if family.field not in probe.labels:
        return None
    # A separate training set: cut into train and validation in the configured ratio; test on `source`.
    train_rows, train_labels = family_labels(probe, family)
    fraction = section.probe_split[0] / sum(section.probe_split)
    fit, val, rest = split_indices(len(train_rows), (fraction, 1 - fraction))
    val = torch.cat([val, rest])
    if min(len(fit), len(val), len(labels)) == 0:
        return None
    train_features = probe.features[train_rows]
    return ProbeSplits(train_features[fit], train_labels[fit], train_features[val], train_labels[val], features, labels)


def record_labels(record) -> dict[str, str | None]:
    """A `VideoRecord`'s classes per family: motion and shape as the reader gives them, colour from the sample's json;
    a clip labelled by nothing else (a table's label column) is one family, `label`."""
    labels = {MOTION_FIELD: record.motion, "shape": record.shape}
    labels |= {name: str(record.meta[name]) for name in FAMILY_FIELDS if name not in labels and record.meta.get(name) is not None}
    if all(value is None for value in labels.values()) and record.label is not None:
        return {"label": record.label}
    return labels


def known_classes(source) -> dict[str, tuple[str, ...]]:
    """The class lists the dataset declares (a manifest's motions and shapes); other families take the labels seen."""
    declared = {MOTION_FIELD: tuple(getattr(source, "motions", ())), "shape": tuple(getattr(source, "shapes", ())), "label": tuple(source.classnames)}
    return {name: classes for name, classes in declared.items() if classes}


def clip_length(built: BuiltModel) -> int:
    """Frames per clip: what a video model was built for; an image model sees as many as a default video model."""
    from vlp.workloads.models.video import DEFAULT_FRAMES

    return int((built.model_cfg.get("vlp", {}).get("video") or {}).get("frames", DEFAULT_FRAMES))


def default_clip_frames(built: BuiltModel, source) -> ClipFrames:
    """Decode `clip_length` frames by uniform sampling, each through the model's eval transform (open_clip's)."""
    from vlp.workloads.data.video_codec import decode_video

    transform, count = image_transform(built), clip_length(built)

    def frames_of(record) -> torch.Tensor:
        if not isinstance(getattr(record, "video", None), bytes):
            raise VlpUserError(f"data: {record.key} is not a video clip; evaluate clips from a video source (format 'video')")
        try:
            clip = decode_video(record.video, count, "uniform", name=record.key)
        except ValueError as err:  # as for images: evaluation counts every clip, so one that does not decode stops it
            raise VlpUserError(f"data: clip {err}; replace or remove it and evaluate again") from None
        return torch.stack([transform.transform_uint8(frame) for frame in clip])

    return frames_of
