"""The evaluation battery for one model on one dataset; results in the layout CLIP_benchmark writes
(`{"dataset", "model", "task", "metrics"}`), plus the figures that go with them.

One pass over the images encodes them (and scores segmentation on the way); every task then works on the
encoded features. A task the data cannot support (no labels, captions, masks or domains) is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from vlp.platform.spec.evaluation import EvalSection
from vlp.workloads.data.readers import EvalSource
from vlp.workloads.evaluation import plots
from vlp.workloads.evaluation.domain_accuracy import per_domain_accuracy
from vlp.workloads.evaluation.encode import EncodedSet, encode_records, encode_texts, image_transform
from vlp.workloads.evaluation.linear_probe import ProbeSplits, linear_probe, split_indices
from vlp.workloads.evaluation.modality_gap import modality_gap
from vlp.workloads.evaluation.prompts import Prompts, class_index, lookup, prompt_name
from vlp.workloads.evaluation.retrieval import retrieval_metrics
from vlp.workloads.evaluation.segmentation import SegmentationScorer, supports_segmentation
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
) -> SuiteOutput:
    """`probe_source` trains the linear probe (default: a split of `source`); `plot_dir` None draws nothing."""
    built.model.eval()
    dataset = dataset_name or source.name
    prompts = prompts or Prompts(source.classnames, section.templates)
    index = class_index(prompts.classnames)
    output = SuiteOutput()
    draw = plot_dir is not None and section.plots

    def add(task: str, metrics: dict) -> None:
        output.results.append({"dataset": dataset, "model": model_name, "task": task, "metrics": metrics})

    classifier = None
    if prompts.classnames and (section.zeroshot or section.per_domain or section.segmentation or section.modality_gap):
        names = [prompt_name(name) for name in prompts.classnames]
        classifier = build_classifier(built.model.encode_text, built.tokenizer, names, list(prompts.templates))
    scorer = None
    if section.segmentation:
        if not supports_segmentation(built.model):
            output.skipped["zeroshot_segmentation"] = "the model has no patch–text similarity maps"
        elif classifier is None:
            output.skipped["zeroshot_segmentation"] = "no class names"
        else:
            scorer = SegmentationScorer(built.model, classifier.T.contiguous(), index, image_transform(built), section.background_threshold)
    encoded = encode_records(built, source.read(), section.batch_size, hooks=(scorer,) if scorer else (), limit=limit)
    labelled = [row for row, label in enumerate(encoded.labels) if lookup(index, label) is not None]
    labels = torch.tensor([lookup(index, encoded.labels[row]) for row in labelled], dtype=torch.long)
    features = encoded.image_features[labelled] if labelled else encoded.image_features[:0]

    predictions = None
    if classifier is not None and labelled and (section.zeroshot or section.per_domain):
        logits = features @ classifier
        predictions = logits.argmax(dim=1)
        if section.zeroshot:
            add("zeroshot_classification", classification_metrics(logits, labels, len(prompts.classnames)))
            if draw:
                output.plots.append(plots.confusion_matrix(predictions, labels, list(prompts.classnames), f"zero-shot: {model_name} on {dataset}", plot_dir / f"{dataset}-confusion-matrix.png"))
    elif section.zeroshot:
        output.skipped["zeroshot_classification"] = "no labelled images"

    if section.per_domain:
        domains = [encoded.domains[row] for row in labelled]
        if predictions is not None and domains and all(domains):
            metrics = per_domain_accuracy(predictions, labels, domains)
            add("domain_accuracy", metrics)
            if draw:
                by_domain = {key.split("/", 1)[1]: value for key, value in metrics.items() if key.startswith("acc1/")}
                output.plots.append(plots.grouped_bars({"zero-shot acc1": by_domain}, f"per-domain accuracy: {model_name} on {dataset}", "acc1", plot_dir / f"{dataset}-per-domain.png"))
        else:
            output.skipped["domain_accuracy"] = "the images name no domains"

    has_captions = bool(encoded.captions) and all(caption for caption in encoded.captions)
    if section.retrieval:
        if has_captions:
            unique_texts = sorted(set(encoded.captions))
            text_index = {text: i for i, text in enumerate(unique_texts)}
            text_features = encode_texts(built, unique_texts, section.batch_size)
            image_to_text = torch.tensor([text_index[caption] for caption in encoded.captions])
            metrics = retrieval_metrics(encoded.image_features, text_features, image_to_text)
            add("zeroshot_retrieval", metrics)
            if draw:
                output.plots.append(plots.recall_at_k(metrics, f"retrieval: {model_name} on {dataset}", plot_dir / f"{dataset}-recall-at-k.png"))
        else:
            output.skipped["zeroshot_retrieval"] = "the images have no captions"

    if section.linear_probe:
        splits = _probe_splits(built, features, labels, index, section, probe_source, limit)
        if splits is None:
            output.skipped["linear_probe"] = "too few labelled images for train, validation and test splits"
        else:
            add("linear_probe", linear_probe(splits, len(prompts.classnames), section.probe_weight_decays))

    if section.modality_gap:
        paired_texts = _paired_texts(encoded, labels, prompts, has_captions)
        if paired_texts is None:
            output.skipped["modality_gap"] = "no captions and no labels to write prompts from"
        else:
            images = encoded.image_features if has_captions else features
            texts = encode_texts(built, paired_texts, section.batch_size)
            add("modality_gap", modality_gap(images, texts))
            if draw:
                output.plots.append(plots.embedding_projection(images, texts, f"image and text embeddings (PCA): {model_name} on {dataset}", plot_dir / f"{dataset}-embedding-projection.png"))

    if scorer is not None:
        if scorer.scored:
            add("zeroshot_segmentation", scorer.metrics())
            if draw and scorer.samples:
                output.plots.append(plots.patch_heatmaps(scorer.samples, image_transform(built).unnormalise, f"patch–text similarity: {model_name}", plot_dir / f"{dataset}-patch-heatmaps.png"))
        else:
            output.skipped["zeroshot_segmentation"] = "the images have no masks"
    return output


def _probe_splits(built, features, labels, index, section: EvalSection, probe_source, limit) -> ProbeSplits | None:
    if probe_source is None:
        fit, val, test = split_indices(len(labels), section.probe_split)
        if min(len(fit), len(val), len(test)) == 0:
            return None
        return ProbeSplits(features[fit], labels[fit], features[val], labels[val], features[test], labels[test])
    # A separate training set: split it into train and validation in the configured ratio; test on `source`.
    train = encode_records(built, probe_source.read(), section.batch_size, limit=limit)
    rows = [row for row, label in enumerate(train.labels) if lookup(index, label) is not None]
    train_features = train.image_features[rows]
    train_labels = torch.tensor([lookup(index, train.labels[row]) for row in rows], dtype=torch.long)
    fraction = section.probe_split[0] / sum(section.probe_split)
    fit, val, rest = split_indices(len(rows), (fraction, 1 - fraction))
    val = torch.cat([val, rest])
    if min(len(fit), len(val), len(labels)) == 0:
        return None
    return ProbeSplits(train_features[fit], train_labels[fit], train_features[val], train_labels[val], features, labels)


def _paired_texts(encoded: EncodedSet, labels: torch.Tensor, prompts: Prompts, has_captions: bool) -> list[str] | None:
    """One text per image: its caption, or else the first template filled with its class."""
    if has_captions:
        return list(encoded.captions)
    if not len(labels) or not prompts.templates:
        return None
    return [prompts.templates[0].format(prompt_name(prompts.classnames[label])) for label in labels.tolist()]
