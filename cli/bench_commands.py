"""`vlp bench …`: the performance benchmarks. Each prints a table and writes the whole report as JSON."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

app = typer.Typer(help="Benchmarks: training throughput against open_clip, data loading, orchestration, CLI start, tracking.",
                  no_args_is_help=True)

OUT_HELP = "Folder for the JSON reports (and, under work/, the datasets and stores the benchmarks create)."


def _out_option() -> Path:
    return typer.Option(Path("bench-results"), "--out", help=OUT_HELP)


def _json_option() -> bool:
    return typer.Option(False, "--json", help="Print the report as one JSON document instead of a table.")


def _setup(preset, batch_size, procs, threads, steps, skip_steps, precision, device, workers):
    from vlp.benchmarks.training_runs import TrainingSetup

    threads = threads or max(1, (os.cpu_count() or 1) // procs)
    return TrainingSetup(preset=preset, batch_size=batch_size, procs=procs, steps=steps, skip_steps=skip_steps,
                         precision=precision, device=device, workers=workers, threads_per_proc=threads)


@app.command("training")
def training(
    preset: str = typer.Option("shapes-rn-tiny", "--preset", help="Model preset (vlp preset or open_clip config name)."),
    batch_size: int = typer.Option(256, "--batch-size", min=2, help="Global batch size."),
    procs: int = typer.Option(2, "--procs", min=1, help="Training processes (torchrun --nproc_per_node)."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch threads per process; 0: CPU cores / procs."),
    steps: int = typer.Option(60, "--steps", min=3, help="Optimizer steps per run."),
    skip_steps: int = typer.Option(10, "--skip-steps", min=0, help="First steps left out of the steady-state rate."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 or bf16 (autocast; open_clip's amp_bf16)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    workers: int = typer.Option(0, "--workers", min=0, help="DataLoader workers per process, for both trainers."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Runs of each trainer, alternating."),
    peak_tflops: float = typer.Option(None, "--peak-tflops", help="Peak TFLOP/s per device for MFU, when the built-in table does not know the device."),
    source_size: int = typer.Option(0, "--source-size", min=0, max=512, help="Shorter side of the stored images; 0: the model's input size."),
    image_format: str = typer.Option("png", "--format", help="Stored image format: png or jpg."),
    max_aspect_ratio: float = typer.Option(1.0, "--max-aspect", min=1.0, max=2.0, help="Longer / shorter side of the stored images, drawn per image up to this."),
    out: Path = _out_option(),
    json_output: bool = _json_option(),
) -> None:
    """Training samples/s and peak memory: vlp's pretraining (DDP and FSDP) against open_clip_train on the same shards and settings
    (same preprocessing and training augmentation)."""
    from vlp.benchmarks.training_throughput import SourceImages, run_training_throughput

    setup = _setup(preset, batch_size, procs, threads, steps, skip_steps, precision, device, workers)
    images = SourceImages(source_size or None, image_format, max_aspect_ratio)
    report = run_training_throughput(setup, out / "work", repeats, peak_tflops_override=peak_tflops,
                                     on_run=None if json_output else _print_training_run, images=images)
    _finish(report, out, json_output)


@app.command("speedups")
def speedups(
    variant: list[str] = typer.Option([], "--variant", help="A known variant (bf16, foreach-adamw, math-attention, compile, "
                                      "grad-checkpointing, full-loss, loader-worker) or NAME=KEY=VALUE[,KEY=VALUE]. Default: all known."),
    preset: str = typer.Option("shapes-rn-tiny", "--preset", help="Model preset."),
    batch_size: int = typer.Option(256, "--batch-size", min=2, help="Global batch size."),
    procs: int = typer.Option(2, "--procs", min=1, help="Training processes."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch threads per process; 0: CPU cores / procs."),
    steps: int = typer.Option(60, "--steps", min=3, help="Optimizer steps per run."),
    skip_steps: int = typer.Option(10, "--skip-steps", min=0, help="First steps left out of the steady-state rate."),
    precision: str = typer.Option("fp32", "--precision", help="Baseline precision: fp32 or bf16."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    workers: int = typer.Option(0, "--workers", min=0, help="Baseline DataLoader workers per process."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Runs of each variant, alternating with the baseline."),
    out: Path = _out_option(),
    json_output: bool = _json_option(),
) -> None:
    """Before/after ratio of each training speed-up: the baseline and each variant, alternating."""
    from vlp.benchmarks.speedups import KNOWN_VARIANTS, parse_variant, run_speedups

    setup = _setup(preset, batch_size, procs, threads, steps, skip_steps, precision, device, workers)
    chosen = [parse_variant(text) for text in variant] or list(KNOWN_VARIANTS.values())
    report = run_speedups(setup, chosen, out / "work", repeats, on_run=None if json_output else _print_training_run)
    _finish(report, out, json_output)


@app.command("data")
def data(
    samples: int = typer.Option(2000, "--samples", min=100, help="Samples per pass (the dataset size)."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Passes of each pipeline, alternating."),
    s3: bool = typer.Option(True, "--s3/--no-s3", help="Also read the shards from a loopback S3 server (moto)."),
    preset: str = typer.Option("ViT-B-32", "--preset", help="Model whose image preprocessing and tokenizer to use."),
    source_size: int = typer.Option(256, "--source-size", min=16, max=512, help="Shorter side of the stored images in pixels."),
    image_format: str = typer.Option("jpg", "--format", help="Stored image format: jpg or png."),
    max_aspect_ratio: float = typer.Option(1.5, "--max-aspect", min=1.0, max=2.0, help="Longer / shorter side, drawn per image up to this."),
    out: Path = _out_option(),
    json_output: bool = _json_option(),
) -> None:
    """Data loading samples/s per worker, local and s3://, against a decode-only floor and open_clip's pipeline
    (same preprocessing and training augmentation)."""
    from vlp.benchmarks.data_loading import run_data_loading

    report = run_data_loading(out / "work", samples, repeats, s3, preset, source_size, image_format, max_aspect_ratio)
    _finish(report, out, json_output)


@app.command("orchestration")
def orchestration(
    experiment: Path = typer.Argument(Path("experiments/quickstart.yaml"), help="Experiment file."),
    set_: list[str] = typer.Option(["train.max_seconds=null", "train.max_steps=30"], "--set",
                                   help="Overrides for both paths (default: 30 steps instead of the file's time budget)."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Runs of each path, alternating."),
    out: Path = _out_option(),
    json_output: bool = _json_option(),
) -> None:
    """`vlp run` wall time against torchrun launching the same training directly; the difference is orchestration."""
    from vlp.benchmarks.orchestration import run_orchestration

    on_run = None if json_output else (lambda path, repeat, wall: typer.echo(f"  {path} #{repeat}: {wall:.1f} s", err=True))
    _finish(run_orchestration(experiment, out / "work", set_, repeats, on_run=on_run), out, json_output)


@app.command("cli")
def cli_start(
    repeats: int = typer.Option(10, "--repeats", min=1, help="Calls of each command, alternating."),
    out: Path = _out_option(),
    json_output: bool = _json_option(),
) -> None:
    """Wall time of `vlp --help` and `vlp runs list`, beside a bare Python start."""
    from vlp.benchmarks.cli_start import run_cli_start

    _finish(run_cli_start(out / "work", repeats), out, json_output)


@app.command("tracking")
def tracking(
    steps: int = typer.Option(60, "--steps", min=3, help="Optimizer steps per run."),
    skip_steps: int = typer.Option(10, "--skip-steps", min=0, help="First steps left out."),
    batch_size: int = typer.Option(256, "--batch-size", min=2, help="Batch size."),
    log_every: int = typer.Option(10, "--log-every", min=1, help="Log metrics every N steps."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Runs per tracking mode, alternating."),
    preset: str = typer.Option("shapes-rn-tiny", "--preset", help="Model preset."),
    server: bool = typer.Option(False, "--server/--sqlite", help="Log to an MLflow server started on 127.0.0.1 instead of a SQLite file."),
    out: Path = _out_option(),
    json_output: bool = _json_option(),
) -> None:
    """Training step time with MLflow tracking off, queued (vlp's tracker) and inline."""
    from vlp.benchmarks.tracking_overhead import run_tracking_overhead

    on_run = None if json_output else (lambda name, repeat, rate: typer.echo(f"  {name} #{repeat}: {rate:.0f} samples/s", err=True))
    _finish(run_tracking_overhead(out / "work", steps, skip_steps, batch_size, log_every, repeats, preset, server=server, on_run=on_run), out, json_output)


@app.command("checkpoint-transfer")
def checkpoint_transfer(
    size_mb: int = typer.Option(128, "--size-mb", min=1, help="Payload size in MB."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Transfers of each kind, alternating."),
    out: Path = _out_option(),
    json_output: bool = _json_option(),
) -> None:
    """Checkpoint-sized writes and reads on loopback S3: one request against multipart transfers."""
    from vlp.benchmarks.checkpoint_transfer import run_checkpoint_transfer

    _finish(run_checkpoint_transfer(out / "work", size_mb, repeats), out, json_output)


@app.command("memory")
def memory(
    preset: str = typer.Option("ViT-B-32", "--preset", help="Model preset (vlp preset or open_clip config name)."),
    procs: list[int] = typer.Option([1, 2], "--procs", min=1, help="Process counts to measure (repeat the option)."),
    budget_gib: float = typer.Option(24.0, "--budget-gib", min=0.1, help="Memory per process for the largest-model estimate."),
    out: Path = _out_option(),
    json_output: bool = _json_option(),
) -> None:
    """Training state per process (parameters, gradients, AdamW state) under DDP and FSDP, measured on CPU gloo
    processes, and the largest open_clip model whose state fits the budget (an estimate without activations)."""
    from vlp.benchmarks.sharded_memory import run_sharded_memory

    _finish(run_sharded_memory(preset, sorted(set(procs)), budget_gib), out, json_output)


@app.command("tokenization")
def tokenization(
    preset: str = typer.Option("ViT-B-32", "--preset", help="vlp preset or open_clip config name whose tokenizer to measure."),
    hf_tokenizer: str = typer.Option("", "--hf-tokenizer", help="A folder holding an HF tokenizer, set as text_cfg.hf_tokenizer_name."),
    clean: str = typer.Option("", "--clean", help="text_cfg.tokenizer_kwargs.clean: lower, whitespace or canonicalize."),
    captions: int = typer.Option(4000, "--captions", min=1, help="Captions per corpus (plain and Unicode)."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Repeats of each measurement (the median is reported)."),
    out: Path = _out_option(),
    json_output: bool = _json_option(),
) -> None:
    """Tokenizer time per caption: vlp's tokenizer against open_clip's (same ids), first pass and steady state."""
    from vlp.benchmarks.tokenization import run_tokenization, tokenizer_model_cfg

    model_cfg, label = tokenizer_model_cfg(preset, hf_tokenizer, clean)
    _finish(run_tokenization(model_cfg, captions, repeats, label), out, json_output)


@app.command("video")
def video(
    clips: int = typer.Option(2000, "--clips", min=512, help="Moving-shapes clips to generate and read (the loader runs take batches of 64 after a warm-up)."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Repeats of each measurement (the median is reported)."),
    image_size: int = typer.Option(32, "--image-size", min=16, help="Frame side in pixels (even: H.264 in yuv420p)."),
    clip_frames: int = typer.Option(16, "--clip-frames", min=2, help="Frames each generated clip holds."),
    frames: int = typer.Option(8, "--frames", min=1, help="Frames the model sees per clip (segment sampling)."),
    workers: int = typer.Option(2, "--workers", min=0, help="DataLoader workers of the multi-worker loader run."),
    out: Path = _out_option(),
    json_output: bool = _json_option(),
) -> None:
    """Video clips: generation, the training loader against its MP4 decode floor (clips/s, CPU time per clip) and
    peak RSS per process."""
    from vlp.benchmarks.video_loading import run_video_loading

    _finish(run_video_loading(out / "work", clips, repeats, image_size, clip_frames, frames, workers), out, json_output)


@app.command("video-models")
def video_models(
    experiments: list[Path] = typer.Option([], "--experiment", help="Experiment files to measure (repeat the option); default: experiments/video-*.yaml."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Clips per step."),
    threads: int = typer.Option(1, "--threads", min=1, help="Intra-op threads."),
    steps: int = typer.Option(5, "--steps", min=1, help="Timed steps per run (after two warm-up steps)."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Runs per variant, alternating (the median is reported)."),
    preset: str = typer.Option("shapes-vit-video", "--preset", help="Towers for files that start from a registered model."),
    out: Path = _out_option(),
    json_output: bool = _json_option(),
) -> None:
    """Training clips/s of each video model the experiment files configure (forward, objective, backward, AdamW on
    random clips; data loading excluded: `vlp bench video` measures that)."""
    import glob

    from vlp.benchmarks.video_models import DEFAULT_EXPERIMENTS, run_video_models

    paths = [str(path) for path in experiments] or sorted(glob.glob(DEFAULT_EXPERIMENTS))
    _finish(run_video_models(paths, batch_size, threads, steps, repeats, preset), out, json_output)


def _print_training_run(measurement) -> None:
    rate = "failed" if measurement.samples_per_second is None else (
        f"{measurement.samples_per_second:.0f} samples/s, {measurement.samples_per_cpu_second or 0:.0f} samples/CPU-s")
    typer.echo(f"  {measurement.system} {measurement.variant} #{measurement.repeat}: {rate}, "
               f"start-up {measurement.startup_seconds or 0:.1f} s, peak RSS {measurement.peak_rss_mb:.0f} MB", err=True)


def _finish(report, out: Path, json_output: bool) -> None:
    path = report.write(out)
    if json_output:
        from vlp.cli.output import print_json

        print_json(report.as_dict())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=report.title)
    for column in report.columns:
        table.add_column(column.header)
    for row in report.rows:
        table.add_row(*[column.render(row.get(column.key)) for column in report.columns])
    # Wide tables stay readable when the output goes to a file.
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    for note in report.notes:
        console.print(f"[dim]{note}[/dim]")
    load = report.environment.get("load_average_start")
    console.print(f"load average at start {load}, at end {report.environment.get('load_average_end')}; "
                  f"{report.environment.get('cpu_count')} CPUs; commit {report.environment.get('git_commit')}")
    console.print(f"wrote {path}", soft_wrap=True)
