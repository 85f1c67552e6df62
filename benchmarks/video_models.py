"""Benchmark: training clips/s of each video model the study's experiment files configure, data loading excluded
(benchmarks/video_loading.py measures that): one optimizer step is the model's forward on a batch of random clips
[B, T, 3, H, W] and token ids, the experiment's objective, backward and AdamW, as the trainer runs them.

    vlp bench video-models [--experiment experiments/video-divided.yaml ...] [--batch-size 64] [--threads 1]
        [--steps 5] [--repeats 3]

A file whose `model.init_from` names a registered or checkpointed model is measured on `--preset` instead (same
towers for the study's files): the benchmark needs no registry. Repeats alternate the variants, so load that
changes while it runs falls on all of them.
"""

from __future__ import annotations

import glob
import time
from pathlib import Path

import torch

from vlp.benchmarks.report import BenchReport, Column
from vlp.benchmarks.stats import alternating, summarize

DEFAULT_EXPERIMENTS = "experiments/video-*.yaml"
DEFAULT_PRESET = "shapes-vit-video"
WARMUP_STEPS = 2


def build_variant(path: str, preset: str):
    """(model, objective, T, image size, tokenizer) as the experiment file builds them; None for another arch."""
    from vlp.platform.spec.loading import load_spec
    from vlp.workloads.models.factory import build_model
    from vlp.workloads.objectives.factory import build_objective

    spec = load_spec(path)
    section = spec.model
    if section.arch != "video":
        return None
    if section.init_from is not None:
        section = section.model_copy(update={"init_from": None, "preset": preset})
    built = build_model(section, spec.objective.contrastive)
    return built.model, build_objective(spec.objective, section), section.video.frames, built.image_size, built.tokenizer


def step_seconds(model, objective, clips: torch.Tensor, texts: torch.Tensor, steps: int) -> float:
    from vlp.workloads.train.optim import build_optimizer

    optimizer = build_optimizer(model, 1e-3, 0.1)
    targets = {"label": torch.randint(-1, 9, (clips.shape[0],))}

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        objective(model(clips, texts), targets).backward()
        optimizer.step()

    for _ in range(WARMUP_STEPS):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps


def run_video_models(paths: list[str], batch_size: int = 64, threads: int = 1, steps: int = 5, repeats: int = 3, preset: str = DEFAULT_PRESET) -> BenchReport:
    torch.set_num_threads(threads)
    report = BenchReport(
        name="video-models", title="Video models: training clips/s (forward, objective, backward, AdamW; no data loading)",
        settings={"batch_size": batch_size, "threads": threads, "steps": steps, "repeats": repeats, "preset_for_init_from": preset},
        columns=[Column("experiment", "experiment"), Column("parameters", "parameters", "{:,}"), Column("trainable", "trainable", "{:,}"),
                 Column("clips_per_second", "clips/s (median)", "{:.1f}"), Column("frames_per_second", "frames/s", "{:.0f}"),
                 Column("range", "clips/s min–max")],
    )
    built = {Path(path).stem: build_variant(path, preset) for path in paths}
    variants = {name: variant for name, variant in built.items() if variant is not None}
    report.notes += [f"{name}: not a video model, skipped" for name, variant in built.items() if variant is None]
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for repeat, name in alternating(list(variants), repeats):
        model, objective, frames, size, tokenizer = variants[name]
        torch.manual_seed(repeat)
        clips = torch.randn(batch_size, frames, 3, size, size)
        texts = tokenizer(["a video of a small red star moving left"] * batch_size)
        rate = batch_size / step_seconds(model.train(), objective, clips, texts, steps)
        rates[name].append(rate)
        report.runs.append({"experiment": name, "repeat": repeat, "clips_per_second": rate})
    for name, (model, _, frames, _, _) in variants.items():
        stats = summarize(rates[name])
        report.rows.append({
            "experiment": name,
            "parameters": sum(parameter.numel() for parameter in model.parameters()),
            "trainable": sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad),
            "clips_per_second": stats["median"], "frames_per_second": stats["median"] * frames,
            "range": f"{stats['min']:.1f}–{stats['max']:.1f}",
        })
    return report.finish()
