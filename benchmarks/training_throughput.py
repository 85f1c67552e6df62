"""Benchmark 1: training throughput and peak memory of vlp's pretraining (DDP and FSDP) against open_clip_train,
same model config, shards, image preprocessing and training augmentation (RandomResizedCrop, scale (0.9, 1.0)),
global batch, precision, process count and threads, runs alternating (vlp, vlp fsdp, open_clip, vlp, …)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from vlp.benchmarks.flops import mfu, peak_tflops, training_flops_per_sample
from vlp.benchmarks.pairs_dataset import ensure_pairs_dataset
from vlp.benchmarks.report import BenchReport, Column
from vlp.benchmarks.stats import alternating, ratio, summarize
from vlp.benchmarks.training_runs import TrainingSetup, TrainingWorkspace

SYSTEMS = ("vlp", "vlp-fsdp", "open_clip")
# On a GPU also: vlp decoding JPEGs in the loader workers (as open_clip does) instead of on the GPU, and vlp compiled
# (its start-up against its steady state says after how many steps compilation pays, see device_path.py).
GPU_SYSTEMS = {"vlp-cpu-decode": ["train.decode_on_device=false"], "vlp-compiled": ["train.compile=true"]}


@dataclass(frozen=True)
class SourceImages:
    """The stored training images both trainers decode and transform."""

    size: int | None = None
    """Shorter side in pixels; None: the model's input size (then squares need no resizing)."""
    image_format: str = "png"
    max_aspect_ratio: float = 1.0
    """Longer / shorter side, drawn per image up to this (img2dataset keeps photos' aspect ratios)."""


def run_training_throughput(setup: TrainingSetup, workdir: Path, repeats: int = 3, samples: int | None = None,
                            peak_tflops_override: float | None = None, on_run=None, images: SourceImages = SourceImages()) -> BenchReport:
    from vlp.workloads.models.catalog import load_model_cfg

    model_cfg = load_model_cfg(setup.preset)
    image_size = model_cfg["vision_cfg"]["image_size"]
    image_size = image_size if isinstance(image_size, int) else image_size[0]
    # open_clip_train reads each shard once per epoch: the dataset must hold every sample of the run.
    samples = samples or max(setup.steps * setup.batch_size, 4 * setup.procs * max(1, setup.workers) * 500)
    data = ensure_pairs_dataset(Path(workdir) / "cache", samples, images.size or image_size, image_format=images.image_format,
                                max_aspect_ratio=images.max_aspect_ratio)
    workspace = TrainingWorkspace(Path(workdir) / "training", data, setup)
    flops_per_sample = training_flops_per_sample(model_cfg)
    device_name = _device_name(setup.device)
    peak = peak_tflops_override or peak_tflops(device_name, setup.precision)

    report = BenchReport(
        name="training",
        title=f"Training throughput: vlp (DDP, FSDP) vs open_clip_train ({setup.preset}, batch {setup.batch_size}, "
              f"{setup.procs} procs × {setup.threads_per_proc} threads, {setup.precision}, {setup.device})",
        settings={**setup.__dict__, "repeats": repeats, "dataset": str(data), "dataset_samples": samples,
                  "source_images": asdict(images), "augment": "RandomResizedCrop scale (0.9, 1.0), both",
                  "device_name": device_name, "peak_tflops": peak, "flops_per_sample": flops_per_sample},
        columns=[
            Column("system", "system"),
            Column("samples_per_second", "samples/s (median)", "{:.0f}"),
            Column("range", "min–max"),
            Column("step_ms", "ms/step", "{:.1f}"),
            Column("samples_per_cpu_second", "samples/CPU-s", "{:.0f}"),
            Column("startup_seconds", "start-up s", "{:.1f}"),
            Column("peak_rss_mb", "peak RSS MB/proc", "{:.0f}"),
            Column("cuda_allocated_mb", "peak CUDA MB", "{:.0f}"),
            Column("mfu", "MFU", "{:.1%}"),
        ],
    )
    systems = (*SYSTEMS, *GPU_SYSTEMS) if setup.device == "cuda" else SYSTEMS
    by_system: dict[str, list] = {system: [] for system in systems}
    for repeat, system in alternating(systems, repeats):
        if system == "open_clip":
            measurement = workspace.run_open_clip("default", repeat)
        else:
            parallelism = "fsdp" if system == "vlp-fsdp" else "ddp"
            overrides = [f"train.parallelism={parallelism}", *GPU_SYSTEMS.get(system, [])]
            measurement = workspace.run_vlp(system, repeat, overrides)
            measurement.system = system
        by_system[system].append(measurement)
        report.runs.append(measurement.as_dict())
        if on_run is not None:
            on_run(measurement)

    for system, measurements in by_system.items():
        rate = summarize([m.samples_per_second for m in measurements])
        report.rows.append({
            "system": system,
            "samples_per_second": rate["median"],
            "range": f"{rate['min']:.0f}–{rate['max']:.0f}" if rate["n"] else None,
            "step_ms": None if not rate["median"] else 1000.0 * setup.batch_size / rate["median"],
            "samples_per_cpu_second": summarize([m.samples_per_cpu_second for m in measurements])["median"],
            "startup_seconds": summarize([m.startup_seconds for m in measurements])["median"],
            "peak_rss_mb": summarize([m.peak_rss_mb for m in measurements])["median"],
            "cuda_allocated_mb": summarize([m.cuda_allocated_mb for m in measurements])["median"],
            "mfu": mfu(rate["median"], flops_per_sample, peak, setup.procs),
        })
    by_row = {row["system"]: row for row in report.rows}
    vlp_rate, open_clip_rate = by_row["vlp"]["samples_per_second"], by_row["open_clip"]["samples_per_second"]
    report.summary = {
        "vlp_over_open_clip": ratio(vlp_rate, open_clip_rate),
        "vlp_over_open_clip_per_cpu_second": ratio(by_row["vlp"]["samples_per_cpu_second"], by_row["open_clip"]["samples_per_cpu_second"]),
        "vlp_fsdp_over_open_clip": ratio(by_row["vlp-fsdp"]["samples_per_second"], open_clip_rate),
        "vlp_samples_per_second": vlp_rate,
        "vlp_fsdp_samples_per_second": by_row["vlp-fsdp"]["samples_per_second"],
        "open_clip_samples_per_second": open_clip_rate,
    }
    if "vlp-compiled" in by_row:
        report.summary["compile_pays_after_steps"] = compile_break_even(by_row["vlp"], by_row["vlp-compiled"], setup.batch_size)
    report.notes = [
        f"steady state: samples/s between the end of step {setup.skip_steps} and the last of {setup.steps} steps, "
        "timed by the same optimizer-step hook in both trainers (vlp.benchmarks.worker_entry); samples/CPU-s divides "
        "by the CPU time of every training process and loader worker over the same steps, which other load barely changes",
        "open_clip_train runs with two compatibility fixes that do not change its computation (worker_entry.open_clip_compat)",
        f"FLOPs per sample (forward + backward, counted on the meta device): {flops_per_sample / 1e9:.3f} GFLOP",
    ]
    return report.finish()


def _device_name(device: str) -> str | None:
    import torch

    if device == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return None


def compile_break_even(eager: dict, compiled: dict, batch_size: int) -> float | None:
    """Steps after which the compiled run's extra start-up is repaid by its faster steps (None: it never is)."""
    if not eager["samples_per_second"] or not compiled["samples_per_second"] or eager["startup_seconds"] is None or compiled["startup_seconds"] is None:
        return None
    saved_per_step = batch_size / eager["samples_per_second"] - batch_size / compiled["samples_per_second"]
    extra_startup = compiled["startup_seconds"] - eager["startup_seconds"]
    return max(0.0, extra_startup) / saved_per_step if saved_per_step > 0 else None
