"""Each evaluation task on inputs built so the right answer is known."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vlp.workloads.evaluation.domain_accuracy import per_domain_accuracy
from vlp.workloads.evaluation.linear_probe import ProbeSplits, fit_logistic_regression, linear_probe, split_indices
from vlp.workloads.evaluation.modality_gap import modality_gap
from vlp.workloads.evaluation.segmentation import confusion, ground_truth, iou_metrics, predict_segmentation

pytestmark = pytest.mark.usefixtures("one_thread")


def separable(count: int, classes: int, seed: int, noise: float = 0.05):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % classes
    centres = torch.eye(16)[:classes] * 3
    return centres[labels] + noise * torch.randn(count, 16, generator=generator), labels


def test_linear_probe_is_perfect_on_separable_features():
    features, labels = separable(300, 5, seed=0)
    train, val, test = split_indices(300, (0.6, 0.2))
    splits = ProbeSplits(features[train], labels[train], features[val], labels[val], features[test], labels[test])
    metrics = linear_probe(splits, 5, (1e-4, 1e-2, 1.0))
    assert metrics["lp_acc1"] == 1.0 and metrics["lp_mean_per_class_recall"] == 1.0 and metrics["val_acc1"] == 1.0
    # CLIP_benchmark's linear probe leaves acc5 undefined unless the test labels reach class index 5.
    assert math.isnan(metrics["lp_acc5"])
    # Every penalty separates these: the tie goes to the strongest.
    assert metrics["weight_decay"] == 1.0


def few_samples_many_noise_dims(count: int, seed: int):
    """Only feature 0 carries the class; 59 noise features let a weakly penalised fit memorise 30 samples."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 2
    features = torch.randn(count, 60, generator=generator)
    features[:, 0] += labels * 2.0 - 1.0
    return features, labels


def test_linear_probe_searches_weight_decay_on_validation_then_refits_on_train_and_val():
    (train, train_y), (val, val_y), (test, test_y) = (few_samples_many_noise_dims(n, seed) for n, seed in ((30, 0), (400, 100), (400, 200)))
    splits = ProbeSplits(train, train_y, val, val_y, test, test_y)
    weak, strong = linear_probe(splits, 2, (1e-6,)), linear_probe(splits, 2, (10.0,))
    assert weak["val_acc1"] < strong["val_acc1"]
    chosen = linear_probe(splits, 2, (1e-6, 10.0))
    assert chosen["weight_decay"] == 10.0 and chosen["val_acc1"] == strong["val_acc1"]
    # The refit sees 430 samples instead of 30: the test accuracy is well above the validation accuracy of the search.
    assert chosen["lp_acc1"] > chosen["val_acc1"] + 0.05


def test_linear_probe_reports_clip_benchmarks_keys():
    features, labels = separable(240, 8, seed=1)
    train, val, test = split_indices(240, (0.6, 0.2))
    metrics = linear_probe(ProbeSplits(features[train], labels[train], features[val], labels[val], features[test], labels[test]), 8, (1e-3,))
    assert list(metrics) == ["lp_acc1", "lp_acc5", "lp_mean_per_class_recall", "weight_decay", "val_acc1"]
    assert metrics["lp_acc5"] == 1.0 and metrics["weight_decay"] == 1e-3


def test_logistic_regression_penalty_shrinks_weights():
    features, labels = separable(120, 3, seed=3)
    weak, _ = fit_logistic_regression(features, labels, 3, 1e-4)
    strong, _ = fit_logistic_regression(features, labels, 3, 1.0)
    assert strong.norm() < weak.norm()


def test_split_indices_partition_the_rows():
    train, val, test = split_indices(10, (0.6, 0.2))
    assert (len(train), len(val), len(test)) == (6, 2, 2)
    assert sorted(torch.cat([train, val, test]).tolist()) == list(range(10))


def test_modality_gap_of_constructed_embeddings():
    images = torch.tensor([[1.0, 0.0, 0.0]] * 4)
    texts = torch.tensor([[0.0, 1.0, 0.0]] * 4)
    metrics = modality_gap(images, texts)
    assert metrics["gap"] == pytest.approx(math.sqrt(2))
    assert metrics["mean_pair_cosine"] == pytest.approx(0.0)
    # Same clouds, scaled: normalisation makes the gap vanish.
    assert modality_gap(images * 3, images)["gap"] == pytest.approx(0.0)
    # Two images at ±y around x and their texts at x: centroids (1/√2, 0) and (1, 0).
    spread = F.normalize(torch.tensor([[1.0, 1.0], [1.0, -1.0]]), dim=1)
    assert modality_gap(spread, torch.tensor([[1.0, 0.0], [1.0, 0.0]]))["gap"] == pytest.approx(1 - 1 / math.sqrt(2))


def test_per_domain_accuracy_known_answers():
    predictions = torch.tensor([0, 1, 1, 0, 2, 2])
    labels = torch.tensor([0, 1, 0, 0, 2, 1])
    metrics = per_domain_accuracy(predictions, labels, ["a", "a", "a", "b", "b", "b"])
    assert metrics["acc1/a"] == pytest.approx(2 / 3) and metrics["acc1/b"] == pytest.approx(2 / 3)
    metrics = per_domain_accuracy(predictions, labels, ["a", "a", "b", "b", "b", "b"])
    assert metrics["acc1/a"] == 1.0 and metrics["acc1/b"] == 0.5
    assert metrics["mean_acc1"] == 0.75 and metrics["worst_acc1"] == 0.5


def test_segmentation_maps_to_labels_with_background_threshold():
    maps = torch.zeros(1, 2, 2, 2)
    maps[0, 0, 0, 0] = 1.0  # class 0 strong at the top-left patch
    maps[0, 1, 1, 1] = 0.6  # class 1 weaker at the bottom-right
    predicted = predict_segmentation(maps, (2, 2), background_threshold=0.5)
    assert predicted.tolist() == [[[1, 0], [0, 2]]]
    assert predict_segmentation(maps, (2, 2), background_threshold=0.7).tolist() == [[[1, 0], [0, 0]]]


def test_miou_on_constructed_prediction():
    truth = ground_truth(torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 2, 2]]), [0, 1])
    assert truth.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 2, 2]]
    predicted = truth.clone()
    predicted[0, 0] = 1  # one background pixel called class 0
    counts = confusion(predicted, truth, 3)
    metrics = iou_metrics(counts)
    # background 7/8, class 0: 4/5, class 1: 4/4
    assert metrics["miou"] == pytest.approx((7 / 8 + 4 / 5 + 1.0) / 3)
    assert metrics["miou_foreground"] == pytest.approx((4 / 5 + 1.0) / 2)
    assert metrics["pixel_acc"] == pytest.approx(15 / 16)
    assert iou_metrics(confusion(truth, truth, 3))["miou"] == 1.0


def test_unknown_objects_are_ignored_not_counted():
    truth = ground_truth(torch.tensor([[0, 1], [2, 3]]), [4, None])
    assert truth.tolist() == [[0, 5], [-1, -1]]
