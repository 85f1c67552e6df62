"""One held-out domain of a leave-one-domain-out study: every method, every trial, selected by DomainBed's rule."""

from __future__ import annotations

import math

import torch

from vlp.platform.layout import RunLayout
from vlp.platform.spec.dg import DgSection
from vlp.platform.storage import join
from vlp.platform.tracking.protocol import NullTracker, Tracker
from vlp.workloads.dg.data import DomainData, split_for
from vlp.workloads.dg.method import StudyContext
from vlp.workloads.dg.selection import select_without_training, train_and_select
from vlp.workloads.dg.zeroshot import zero_shot_logits
from vlp.workloads.models.factory import BuiltModel
from vlp.workloads.train.distributed import DistContext


def result_uri(layout: RunLayout, held_out: str) -> str:
    """Where the worker leaves one held-out domain's results for the pipeline."""
    return join(layout.results, "dg", f"held-out-{held_out}.json")


def build_method(name: str, context: StudyContext, settings: DgSection):
    if name == "erm":
        from vlp.workloads.dg.erm import Erm

        return Erm(context)
    if name == "indigo":
        from vlp.workloads.dg.indigo import Indigo

        return Indigo(context, settings.indigo)
    raise ValueError(f"unknown DG method {name!r}")


def run_held_out(
    held_out: str, data: DomainData, pretrained: BuiltModel, frozen_features: torch.Tensor, settings: DgSection,
    dist: DistContext, seed: int, trackers: dict[str, Tracker] | None = None,
) -> dict | None:
    """Results of every method for this held-out domain (on rank 0; None elsewhere)."""
    trackers = trackers or {}
    results = {}
    zero_shot = None
    for name in settings.methods:
        tracker = trackers.get(name, NullTracker())
        trials = []
        for trial in range(settings.trials):
            trial_seed = seed + 1000 * trial
            splits = split_for(data, held_out, settings.holdout_fraction, trial_seed)
            # Same seed on every rank: the heads start identical everywhere, as DDP needs.
            torch.manual_seed(trial_seed)
            context = StudyContext(data, splits, pretrained, frozen_features, settings.finetune)
            if name == "zeroshot":
                zero_shot = zero_shot if zero_shot is not None else zero_shot_logits(context, settings.templates)
                selected = select_without_training(zero_shot, splits, data.labels) if dist.is_main else None
            else:
                selected = train_and_select(build_method(name, context, settings), splits, data.labels, settings, dist, tracker, trial_seed, f"trial{trial}")
            if selected is not None:
                trials.append({"seed": trial_seed, **selected.as_dict()})
        if dist.is_main:
            results[name] = summarise(trials)
            tracker.log_metrics({key: value for key, value in results[name].items() if isinstance(value, float)}, step=settings.steps)
    if not dist.is_main:
        return None
    sources = [name for name in data.domain_names if name != held_out]
    return {"held_out": held_out, "source_domains": sources, "classes": list(data.classnames), "methods": results}


def summarise(trials: list[dict]) -> dict:
    """Mean over trials of the selected validation and held-out accuracies, and the ± DomainBed prints
    (population standard deviation over the trials divided by √trials)."""
    tests = [trial["test_acc"] for trial in trials]
    vals = [trial["val_acc"] for trial in trials]
    mean = sum(tests) / len(tests)
    stderr = math.sqrt(sum((t - mean) ** 2 for t in tests) / len(tests)) / math.sqrt(len(tests))
    return {"test_acc": mean, "test_acc_stderr": stderr, "val_acc": sum(vals) / len(vals), "trials": trials}
