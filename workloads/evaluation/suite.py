"""The evaluation battery for one model on one dataset; results in the layout CLIP_benchmark writes
(see `publish.make_result`), plus the figures that go with them.

One pass over the images encodes them (and on the way scores segmentation, collects the questions with their pair
features, and keeps the pixels ITM re-ranking needs); every task then works on the encoded features. A task the
data or the model cannot support (no labels, captions, masks, domains, questions; no patch maps or ITM head) is
skipped, with the reason. Clip sources have their own battery (`video_suite`; a video model on stills runs this one), box-regressing
grounding models theirs (`grounding`); a dual encoder on data with referring expressions also runs the grounding
battery's patch-region baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from vlp.platform.spec.evaluation import EvalSection
from vlp.workloads.data.readers import EvalSource
from vlp.workloads.evaluation import plots
from vlp.workloads.evaluation.domain_accuracy import per_domain_accuracy
from vlp.workloads.evaluation.encode import BatchHook, EncodedSet, encode_records, encode_texts, image_transform
from vlp.workloads.evaluation.itm_rerank import itm_scorer, rerank_metrics
from vlp.workloads.evaluation.linear_probe import ProbeSplits, linear_probe, split_indices
from vlp.workloads.evaluation.modality_gap import modality_gap
from vlp.workloads.evaluation.prompts import LabelMap, Prompts, load_prompts
from vlp.workloads.evaluation.publish import make_result
from vlp.workloads.evaluation.retrieval import retrieval_metrics
from vlp.workloads.evaluation.segmentation import SegmentationScorer, patch_similarity
from vlp.workloads.evaluation.vqa import QuestionCollector, concat_features, fused_pair_encoder, vqa_accuracy
from vlp.workloads.evaluation.zeroshot import build_classifier, classification_metrics
from vlp.workloads.models.factory import BuiltModel


@dataclass
class SuiteOutput:
    results: list[dict] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Task → why it did not run."""


@torch.no_grad()
def run_suite(
    built: BuiltModel,
    source: EvalSource,
    section: EvalSection,
    model_name: str,
    plot_dir: Path | None = None,
    prompts: Prompts | None = None,
    probe_source: EvalSource | None = None,
    dataset_name: str | None = None,
    limit: int | None = None,
    pretrained: str = "",
) -> SuiteOutput:
    """`model_name` and `pretrained` name the model and its weights in the results as CLIP_benchmark's `model`
    and `pretrained` do (`pretrained` "" for random weights); `probe_source` trains the linear probe (default: a
    split of `source`); `plot_dir` None draws nothing."""
    arguments = (built, source, section, model_name, plot_dir, prompts, probe_source, dataset_name, limit, pretrained)
    # By the data: a video model scores stills as clips of one frame (image battery); any model scores clips here.
    if holds_clips(source):
        from vlp.workloads.evaluation.video_suite import run_video_suite

        return run_video_suite(*arguments)
    if built.arch == "transvg":
        from vlp.workloads.evaluation.grounding import run_grounding_suite

        return run_grounding_suite(*arguments)
    built.model.eval()
    dataset = dataset_name or source.name
    prompts = prompts or load_prompts(source, section)
    label_map = LabelMap(prompts.classnames, source.classnames)
    output = SuiteOutput()
    draw = plot_dir is not None and section.plots

    def add(task: str, metrics: dict, num_images: int, num_captions: int = 0) -> None:
        output.results.append(make_result(dataset, model_name, pretrained, task, metrics, section.language, num_images, num_captions))

    classifier = None
    if prompts.classnames and (section.zeroshot or section.per_domain or section.segmentation or section.modality_gap):
        classifier = build_classifier(built.model.encode_text, built.tokenizer, prompts.prompt_names(), list(prompts.templates))
    scorer = None
    if section.segmentation:
        maps = patch_similarity(built.model)
        if maps is None:
            output.skipped["zeroshot_segmentation"] = "the model has no patch–text similarity maps"
        elif classifier is None:
            output.skipped["zeroshot_segmentation"] = "no class names"
        else:
            scorer = SegmentationScorer(maps, classifier.T.contiguous(), label_map.index, image_transform(built), section.background_threshold)
    questions = QuestionCollector(fused_pair_encoder(built.model, built.tokenizer), section.batch_size) if section.vqa else None
    pixels = PixelKeeper() if section.itm_rerank and hasattr(built.model, "itm_logits") else None
    refexps = RefexpCounter() if section.grounding else None
    hooks: tuple[BatchHook, ...] = tuple(hook for hook in (scorer, questions, pixels, refexps) if hook is not None)
    encoded = encode_records(built, source.read(), section.batch_size, hooks=hooks, limit=limit)
    classes = [label_map(label, index) for label, index in zip(encoded.labels, encoded.label_indices)]
    labelled = [row for row, label in enumerate(classes) if label is not None]
    labels = torch.tensor([classes[row] for row in labelled], dtype=torch.long)
    features = encoded.image_features[labelled] if labelled else encoded.image_features[:0]

    predictions = None
    if classifier is not None and labelled and (section.zeroshot or section.per_domain):
        logits = features @ classifier
        predictions = logits.argmax(dim=1)
        if section.zeroshot:
            add("zeroshot_classification", classification_metrics(logits, labels, with_acc5=len(prompts.classnames) >= 5), len(labels))
            if draw:
                output.plots.append(plots.confusion_matrix(predictions, labels, list(prompts.classnames), f"zero-shot: {model_name} on {dataset}", plot_dir / f"{dataset}-confusion-matrix.png"))
    elif section.zeroshot:
        output.skipped["zeroshot_classification"] = "no labelled images"

    if section.per_domain:
        domains = [encoded.domains[row] for row in labelled]
        if predictions is not None and domains and all(domains):
            metrics = per_domain_accuracy(predictions, labels, domains)
            add("domain_accuracy", metrics, len(labels))
            if draw:
                by_domain = {key.split("/", 1)[1]: value for key, value in metrics.items() if key.startswith("acc1/")}
                output.plots.append(plots.grouped_bars({"zero-shot acc1": by_domain}, f"per-domain accuracy: {model_name} on {dataset}", "acc1", plot_dir / f"{dataset}-per-domain.png"))
        else:
            output.skipped["domain_accuracy"] = "the images name no domains"

    has_captions = bool(encoded.captions) and all(encoded.captions)
    if has_captions and (section.retrieval or pixels is not None):
        texts = [caption for captions in encoded.captions for caption in captions]
        text_to_image = torch.tensor([image for image, captions in enumerate(encoded.captions) for _ in captions])
        text_features = _encode_each_once(built, texts, section.batch_size)
    if section.retrieval:
        if has_captions:
            metrics = retrieval_metrics(encoded.image_features, text_features, text_to_image)
            add("zeroshot_retrieval", metrics, len(encoded.captions), len(texts))
            if draw:
                output.plots.append(plots.recall_at_k(metrics, f"retrieval: {model_name} on {dataset}", plot_dir / f"{dataset}-recall-at-k.png"))
        else:
            output.skipped["zeroshot_retrieval"] = "the images have no captions"

    if section.itm_rerank:
        if pixels is None:
            output.skipped["itm_rerank"] = "the model has no image-text matching head (itm_logits)"
        elif not has_captions:
            output.skipped["itm_rerank"] = "the images have no captions"
        else:
            metrics = _itm_rerank(built, pixels, texts, text_features, encoded.image_features, text_to_image, section)
            if metrics is None:
                output.skipped["itm_rerank"] = "the model's ITM head is switched off (model.fusion.itm_weight: 0)"
            else:
                add("itm_rerank", metrics, len(encoded.captions), len(texts))

    if questions is not None:
        if not questions.set.questions:
            output.skipped["vqa"] = "the images have no questions"
        else:
            metrics = _vqa(built, questions, encoded, source, section)
            if metrics is None:
                output.skipped["vqa"] = "too few images with questions for train, validation and test splits"
            else:
                add("vqa", metrics, metrics.pop("num_test_images"), metrics["num_test_questions"])

    if section.linear_probe:
        probe_labels = LabelMap(prompts.classnames, probe_source.classnames) if probe_source is not None else label_map
        splits = _probe_splits(built, features, labels, probe_labels, section, probe_source, limit)
        if splits is None:
            output.skipped["linear_probe"] = "too few labelled images for train, validation and test splits"
        else:
            metrics = linear_probe(splits, len(prompts.classnames), section.probe_weight_decays)
            add("linear_probe", {**metrics, "num_train_images": len(splits.train_labels) + len(splits.val_labels)}, len(splits.test_labels))

    if section.modality_gap:
        paired_texts = _paired_texts(encoded, labels, prompts, has_captions)
        if paired_texts is None:
            output.skipped["modality_gap"] = "no captions and no labels to write prompts from"
        else:
            images = encoded.image_features if has_captions else features
            texts = encode_texts(built, paired_texts, section.batch_size)
            add("modality_gap", modality_gap(images, texts), len(images), len(paired_texts) if has_captions else 0)
            if draw:
                output.plots.append(plots.embedding_projection(images, texts, f"image and text embeddings (PCA): {model_name} on {dataset}", plot_dir / f"{dataset}-embedding-projection.png"))

    if scorer is not None:
        if scorer.scored:
            add("zeroshot_segmentation", scorer.metrics(), scorer.scored)
            if draw and scorer.samples:
                output.plots.append(plots.patch_heatmaps(scorer.samples, image_transform(built).unnormalise, f"patch–text similarity: {model_name}", plot_dir / f"{dataset}-patch-heatmaps.png"))
        else:
            output.skipped["zeroshot_segmentation"] = "the images have no masks"

    if refexps is not None:
        if refexps.count:
            from vlp.workloads.evaluation.grounding import run_grounding_suite

            grounding = run_grounding_suite(built, source, section, model_name, plot_dir, dataset_name=dataset_name, limit=limit, pretrained=pretrained)
            output.results += grounding.results
            output.plots += grounding.plots
            output.skipped |= grounding.skipped
        else:
            output.skipped["visual_grounding"] = "the images have no referring expressions"
    return output


def holds_clips(source: EvalSource) -> bool:
    """A source of video clips (the video readers' formats) rather than images."""
    return source.format.startswith("video")


class PixelKeeper:
    """A batch hook that keeps every image's model input, for the fused forward passes of ITM re-ranking."""

    def __init__(self):
        self.batches: list[torch.Tensor] = []

    def __call__(self, pixels: torch.Tensor, records: list) -> None:
        self.batches.append(pixels)

    def pixels(self) -> torch.Tensor:
        return torch.cat(self.batches)


class RefexpCounter:
    """A batch hook that counts the referring expressions (whether the grounding battery has anything to do)."""

    def __init__(self):
        self.count = 0

    def __call__(self, pixels: torch.Tensor, records: list) -> None:
        self.count += sum(len(record.refexps) for record in records)


def _itm_rerank(built: BuiltModel, pixels: PixelKeeper, texts: list[str], text_features, image_features, text_to_image, section: EvalSection) -> dict | None:
    """Re-ranked retrieval metrics; None when the model's ITM head is off (its itm_logits raises ValueError)."""
    distinct = sorted(set(texts))
    position = {text: row for row, text in enumerate(distinct)}
    images, tokens = pixels.pixels(), built.tokenizer(distinct)
    try:
        built.model.itm_logits(images[:1], tokens[:1])
    except ValueError:
        return None
    score = itm_scorer(built.model.itm_logits, images, tokens, section.batch_size)
    return rerank_metrics(image_features, text_features, text_to_image, score, section.rerank_top_k, torch.tensor([position[text] for text in texts]))


def _vqa(built: BuiltModel, questions: QuestionCollector, encoded: EncodedSet, source: EvalSource, section: EvalSection) -> dict | None:
    """VQA metrics from the fused pairs, or for a dual encoder from [image embedding, question embedding]."""
    asked = questions.set
    if asked.features:
        features = torch.cat(asked.features)
    else:
        features = concat_features(encoded.image_features, _encode_each_once(built, asked.questions, section.batch_size), asked.image_rows)
    vocabulary = source.answers or tuple(sorted(set(asked.answers)))
    return vqa_accuracy(features, asked, vocabulary, section.probe_split, section.probe_weight_decays)


def _probe_splits(built, features, labels, label_map: LabelMap, section: EvalSection, probe_source, limit) -> ProbeSplits | None:
    if probe_source is None:
        fit, val, test = split_indices(len(labels), section.probe_split)
        if min(len(fit), len(val), len(test)) == 0:
            return None
        return ProbeSplits(features[fit], labels[fit], features[val], labels[val], features[test], labels[test])
    # A separate training set: split it into train and validation in the configured ratio; test on `source`.
    train = encode_records(built, probe_source.read(), section.batch_size, limit=limit)
    classes = [label_map(label, index) for label, index in zip(train.labels, train.label_indices)]
    rows = [row for row, label in enumerate(classes) if label is not None]
    train_features = train.image_features[rows]
    train_labels = torch.tensor([classes[row] for row in rows], dtype=torch.long)
    fraction = section.probe_split[0] / sum(section.probe_split)
    fit, val, rest = split_indices(len(rows), (fraction, 1 - fraction))
    val = torch.cat([val, rest])
    if min(len(fit), len(val), len(labels)) == 0:
        return None
    return ProbeSplits(train_features[fit], train_labels[fit], train_features[val], train_labels[val], features, labels)


def _paired_texts(encoded: EncodedSet, labels: torch.Tensor, prompts: Prompts, has_captions: bool) -> list[str] | None:
    """One text per image: its (first) caption, or else the first template filled with its class."""
    if has_captions:
        return [captions[0] for captions in encoded.captions]
    if not len(labels) or not prompts.templates:
        return None
    names = prompts.prompt_names()
    return [prompts.templates[0].format(names[label]) for label in labels.tolist()]


def _encode_each_once(built: BuiltModel, texts: list[str], batch_size: int) -> torch.Tensor:
    """Features of every text, row for row, each distinct text encoded once (generated captions repeat a lot)."""
    unique = sorted(set(texts))
    features = encode_texts(built, unique, batch_size)
    position = {text: row for row, text in enumerate(unique)}
    return features[torch.tensor([position[text] for text in texts], dtype=torch.long)]
