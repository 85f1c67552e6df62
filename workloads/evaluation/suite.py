"""The evaluation battery for one model on one dataset; results in the layout CLIP_benchmark writes."""

from __future__ import annotations

import torch

from vlp.platform.spec.evaluation import EvalSection
from vlp.workloads.evaluation.encode import encode_eval_set, encode_texts
from vlp.workloads.evaluation.retrieval import retrieval_metrics
from vlp.workloads.evaluation.zeroshot import build_classifier, classification_metrics
from vlp.workloads.models.factory import BuiltModel


def run_suite(built: BuiltModel, shard_uris: list[str], manifest: dict, section: EvalSection, dataset: str, model_name: str) -> list[dict]:
    """One result dict per task: {"dataset", "model", "task", "metrics"}."""
    torch.set_grad_enabled(False)
    encoded = encode_eval_set(built, shard_uris, section.batch_size)
    results = []
    if section.zeroshot:
        classnames = list(manifest["classes"]["shape"])
        labels = torch.tensor([classnames.index(meta["shape"]) for meta in encoded.metadata])
        classifier = build_classifier(built.model.encode_text, built.tokenizer, classnames, list(section.templates))
        logits = encoded.image_features @ classifier
        metrics = classification_metrics(logits, labels, len(classnames))
        results.append({"dataset": dataset, "model": model_name, "task": "zeroshot_classification", "metrics": metrics})
    if section.retrieval:
        unique_texts = sorted(set(encoded.captions))
        index = {text: i for i, text in enumerate(unique_texts)}
        text_features = encode_texts(built, unique_texts, section.batch_size)
        image_to_text = torch.tensor([index[caption] for caption in encoded.captions])
        metrics = retrieval_metrics(encoded.image_features, text_features, image_to_text)
        results.append({"dataset": dataset, "model": model_name, "task": "zeroshot_retrieval", "metrics": metrics})
    return results


def mlflow_metric_name(result: dict, key: str) -> str:
    """`zeroshot/shapes/acc1`, `retrieval/shapes/image_retrieval_recall_at_1` (MLflow keys cannot hold '@')."""
    prefix = "zeroshot" if result["task"] == "zeroshot_classification" else "retrieval"
    return f"{prefix}/{result['dataset']}/{key.replace('@', '_at_')}"
