"""Evaluation metrics on inputs built so the right answer is known."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vlp.workloads.evaluation.retrieval import retrieval_metrics
from vlp.workloads.evaluation.zeroshot import build_classifier, classification_metrics


def test_retrieval_recall_on_constructed_embeddings():
    # 4 images, 4 texts; image i matches text i exactly except image 3, whose text is ranked 2nd.
    texts = torch.eye(4)
    images = torch.eye(4).clone()
    images[3] = F.normalize(torch.tensor([0.0, 0.0, 0.8, 0.6]), dim=0)
    metrics = retrieval_metrics(images, texts, torch.arange(4))
    assert metrics["text_retrieval_recall@1"] == 0.75
    assert metrics["text_retrieval_recall@5"] == 1.0
    # Text 3's best image is image 3 (0.6) since image 2 scores 0 against it.
    assert metrics["image_retrieval_recall@1"] == 1.0


def test_an_image_with_several_captions_is_found_by_any_of_them():
    images = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    # Image 0 has three captions; its top text is its second one. Image 1's one caption is closer to image 0.
    texts = F.normalize(torch.tensor([[0.6, 0.4], [1.0, 0.0], [0.7, 0.3], [0.9, 0.45]]), dim=1)
    metrics = retrieval_metrics(images, texts, torch.tensor([0, 0, 0, 1]))
    assert metrics["text_retrieval_recall@1"] == 0.5  # image 0 finds a caption of its own; image 1 finds one of image 0's
    # Texts query images: each of image 0's captions finds image 0; image 1's caption ranks image 0 first.
    assert metrics["image_retrieval_recall@1"] == 0.75
    assert metrics["image_retrieval_recall@5"] == 1.0  # k beyond the 2 images is capped


def test_classification_metrics_known_answers():
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [3.0, 1.0, 2.0], [1.0, 2.0, 3.0]])
    labels = torch.tensor([0, 1, 1, 2])
    metrics = classification_metrics(logits, labels, with_acc5=False)
    assert metrics["acc1"] == 0.75
    assert math.isnan(metrics["acc5"])  # fewer than five classes, as CLIP_benchmark writes it
    assert abs(metrics["mean_per_class_recall"] - (1 + 0.5 + 1) / 3) < 1e-6


def test_classifier_is_normalised_template_mean():
    vocabulary = {"a cat": [1.0, 0.0], "the cat": [0.0, 1.0], "a dog": [1.0, 1.0], "the dog": [1.0, 1.0]}
    tokenizer = lambda texts: texts  # noqa: E731
    encode = lambda texts: torch.tensor([vocabulary[t] for t in texts])  # noqa: E731
    classifier = build_classifier(encode, tokenizer, ["cat", "dog"], ["a {}", "the {}"])
    expected_cat = F.normalize(torch.tensor([0.5, 0.5]), dim=0)
    assert torch.allclose(classifier[:, 0], expected_cat, atol=1e-6)
    assert torch.allclose(classifier.norm(dim=0), torch.ones(2))
