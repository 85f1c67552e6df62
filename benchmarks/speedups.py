"""Before/after ratios of vlp's training speed-ups: the same run with one setting changed, alternating with the
baseline (baseline, variant 1, variant 2, …, baseline, …), on the shards and settings of the training benchmark."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vlp.benchmarks.pairs_dataset import ensure_pairs_dataset
from vlp.benchmarks.report import BenchReport, Column
from vlp.benchmarks.stats import alternating, ratio, summarize
from vlp.benchmarks.training_runs import TrainingSetup, TrainingWorkspace


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: tuple[str, ...] = ()
    """Experiment-file overrides (`train.precision=bf16`) applied to the baseline spec."""
    sdpa: str = "default"
    """`math`: run with the unfused reference attention instead of torch's fused SDPA kernels."""
    what: str = field(default="", compare=False)


BASELINE = Variant("baseline", what="defaults")
# Each entry switches one thing away from the default (or towards an opt-in).
KNOWN_VARIANTS = {
    "bf16": Variant("bf16", ("train.precision=bf16",), what="bf16 autocast"),
    "foreach-adamw": Variant("foreach-adamw", ("train.fused_optimizer=false",), what="AdamW foreach instead of fused"),
    "math-attention": Variant("math-attention", sdpa="math", what="unfused attention instead of SDPA kernels"),
    "compile": Variant("compile", ("train.compile=true",), what="torch.compile"),
    "grad-checkpointing": Variant("grad-checkpointing", ("train.grad_checkpointing=true",), what="activation checkpointing"),
    "full-loss": Variant("full-loss", ("objective.local_loss=false",), what="full N×N logits on every process"),
    "loader-worker": Variant("loader-worker", ("data.workers=1",), what="1 DataLoader worker per process (prefetch 4)"),
}


def parse_variant(text: str) -> Variant:
    """A known name (`bf16`), or `name=key=value[,key=value…]` for any experiment-file overrides."""
    if text in KNOWN_VARIANTS:
        return KNOWN_VARIANTS[text]
    name, sep, overrides = text.partition("=")
    if not sep or not overrides or "=" not in overrides:
        from vlp.platform.errors import VlpUserError

        raise VlpUserError(f"--variant {text!r}: use one of {', '.join(KNOWN_VARIANTS)} or NAME=KEY=VALUE[,KEY=VALUE…]")
    return Variant(name, tuple(part.strip() for part in overrides.split(",")), what=overrides)


def run_speedups(setup: TrainingSetup, variants: list[Variant], workdir: Path, repeats: int = 3, on_run=None) -> BenchReport:
    from vlp.workloads.models.catalog import load_model_cfg

    image_size = load_model_cfg(setup.preset)["vision_cfg"]["image_size"]
    data = ensure_pairs_dataset(Path(workdir) / "cache", max(setup.steps * setup.batch_size, 8000),
                                image_size if isinstance(image_size, int) else image_size[0])
    workspace = TrainingWorkspace(Path(workdir) / "speedups", data, setup)
    for variant in variants:
        workspace.vlp_spec(list(variant.overrides))  # a bad override fails before anything runs
    everything = [BASELINE, *variants]
    by_name = {variant.name: variant for variant in everything}
    measured: dict[str, list] = {variant.name: [] for variant in everything}
    report = BenchReport(
        name="speedups",
        title=f"vlp speed-ups, each against the baseline ({setup.preset}, batch {setup.batch_size}, "
              f"{setup.procs} procs × {setup.threads_per_proc} threads, {setup.precision}, {setup.device})",
        settings={**setup.__dict__, "repeats": repeats, "dataset": str(data),
                  "variants": {v.name: {"overrides": list(v.overrides), "sdpa": v.sdpa, "what": v.what} for v in everything}},
        columns=[
            Column("variant", "variant"), Column("what", "change"),
            Column("samples_per_second", "samples/s (median)", "{:.0f}"), Column("range", "min–max"),
            Column("speedup", "× baseline", "{:.2f}"),
            Column("samples_per_cpu_second", "samples/CPU-s", "{:.0f}"), Column("cpu_speedup", "× baseline (CPU-s)", "{:.2f}"),
            Column("startup_seconds", "start-up s", "{:.1f}"),
            Column("peak_rss_mb", "peak RSS MB/proc", "{:.0f}"), Column("memory_ratio", "memory × baseline", "{:.2f}"),
        ],
    )
    for repeat, name in alternating(list(by_name), repeats):
        variant = by_name[name]
        measurement = workspace.run_vlp(name, repeat, list(variant.overrides), sdpa=variant.sdpa)
        measured[name].append(measurement)
        report.runs.append(measurement.as_dict())
        if on_run is not None:
            on_run(measurement)

    def memory(name: str) -> float | None:
        return summarize([m.cuda_allocated_mb or m.peak_rss_mb for m in measured[name]])["median"]

    base_rate = summarize([m.samples_per_second for m in measured[BASELINE.name]])["median"]
    base_cpu_rate = summarize([m.samples_per_cpu_second for m in measured[BASELINE.name]])["median"]
    for variant in everything:
        rate = summarize([m.samples_per_second for m in measured[variant.name]])
        report.rows.append({
            "variant": variant.name, "what": variant.what,
            "samples_per_second": rate["median"],
            "range": f"{rate['min']:.0f}–{rate['max']:.0f}" if rate["n"] else None,
            "speedup": ratio(rate["median"], base_rate),
            "samples_per_cpu_second": summarize([m.samples_per_cpu_second for m in measured[variant.name]])["median"],
            "cpu_speedup": ratio(summarize([m.samples_per_cpu_second for m in measured[variant.name]])["median"], base_cpu_rate),
            "startup_seconds": summarize([m.startup_seconds for m in measured[variant.name]])["median"],
            "peak_rss_mb": summarize([m.peak_rss_mb for m in measured[variant.name]])["median"],
            "memory_ratio": ratio(memory(variant.name), memory(BASELINE.name)),
        })
    report.summary = {row["variant"]: {"wall": row["speedup"], "cpu": row["cpu_speedup"]}
                      for row in report.rows if row["variant"] != BASELINE.name}
    report.notes = ["× baseline > 1 means the variant is faster than the defaults; memory is peak CUDA allocation on GPU, "
                    "peak RSS of the largest training process on CPU"]
    return report.finish()
