"""Benchmark: video data, from generating moving-shapes clips to training batches.

- `generate`: clips/s of the moving-shapes generator (render every frame, encode the H.264 MP4, write the shard),
  in one process and in one per CPU;
- `floor`: read each shard, walk its tar members and decode the T frames the training sampling picks (the least
  any loader must do);
- `vlp`: vlp's training stream with the video sample decoder (shuffle buffer, decode T frames, one training crop
  for all of them, normalise, tokenise, batches), in the training process (`workers 0`, one torch thread, the
  floor's equal) and with DataLoader workers.

Each loading pipeline runs in a fresh process, so its peak RSS is its own: the main process's, and the largest
DataLoader worker's where there are workers. Repeats alternate the pipelines.
"""

from __future__ import annotations

import dataclasses
import gc
import multiprocessing
import os
import resource
import time
from pathlib import Path

from vlp.benchmarks.report import BenchReport, Column
from vlp.benchmarks.stats import alternating, ratio, summarize

BATCH_SIZE = 64
PRESET = "shapes-vit-tiny"


def run_video_loading(workdir: Path, clips: int = 2000, repeats: int = 3, image_size: int = 32, clip_frames: int = 16,
                      frames: int = 8, workers: int = 2, preset: str = PRESET) -> BenchReport:
    from vlp.workloads.data.shapes_video import VideoShapesParams, generate_shapes_video
    from vlp.workloads.data.shards import list_shards

    workdir = Path(workdir)
    params = VideoShapesParams(samples=clips, seed=0, image_size=image_size, frames=clip_frames, shard_size=250)
    cpus = os.cpu_count() or 1
    report = BenchReport(
        name="video",
        title=f"Video data: {clips} moving-shapes clips ({clip_frames} frames, {image_size} px, H.264), {frames} frames "
              f"a clip to the model with training augmentation, batch {BATCH_SIZE}",
        settings={"clips": clips, "repeats": repeats, "image_size": image_size, "clip_frames": clip_frames, "frames": frames,
                  "workers": workers, "preset": preset, "batch_size": BATCH_SIZE, "sampling": "segment"},
        columns=[
            Column("pipeline", "pipeline"), Column("clips_per_second", "clips/s (median)", "{:.0f}"), Column("range", "min–max"),
            Column("cpu_us_per_clip", "CPU µs/clip (main)", "{:.0f}"), Column("of_floor", "× floor rate", "{:.2f}"),
            Column("peak_rss_mb", "peak RSS MB (main)", "{:.0f}"), Column("worker_peak_rss_mb", "peak RSS MB (worker)", "{:.0f}"),
        ],
    )
    # Generation: a part of the clips in one process, then all of them in one process per CPU (those are loaded next).
    single = dataclasses.replace(params, samples=min(clips, 250))
    for processes, these, where in ((1, single, "generate-1"), (cpus, params, "generate")):
        cpu_started = time.process_time()
        manifest = generate_shapes_video(these, str(workdir / where), processes=processes)
        cpu_us = 1e6 * (time.process_time() - cpu_started) / these.samples if processes == 1 else None
        report.rows.append({"pipeline": f"generate ({processes} process{'es' if processes > 1 else ''})",
                            "clips_per_second": manifest["samples_per_second"], "range": "–", "cpu_us_per_clip": cpu_us})
        report.runs.append({"pipeline": "generate", "processes": processes, "clips": these.samples, "seconds": manifest["seconds"]})
    shards = list_shards(str(workdir / "generate"))

    pipelines = {"floor": (0, "floor"), "vlp, workers 0": (0, "vlp")}
    if workers:
        pipelines[f"vlp, workers {workers}"] = (workers, "vlp")
    measured: dict[str, list[dict]] = {name: [] for name in pipelines}
    for repeat, name in alternating(list(pipelines), repeats):
        worker_count, kind = pipelines[name]
        result = _in_fresh_process(_measure, kind, shards, clips, frames, worker_count, preset)
        measured[name].append(result)
        report.runs.append({"pipeline": name, "repeat": repeat, **result})

    floor = summarize([run["clips"] / run["seconds"] for run in measured["floor"]])["median"]
    for name, runs in measured.items():
        rate = summarize([run["clips"] / run["seconds"] for run in runs])
        report.rows.append({
            "pipeline": name, "clips_per_second": rate["median"], "range": f"{rate['min']:.0f}–{rate['max']:.0f}",
            "cpu_us_per_clip": 1e6 * summarize([run["cpu_seconds"] / run["clips"] for run in runs])["median"],
            "of_floor": ratio(rate["median"], floor),
            "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
            "worker_peak_rss_mb": max(run["worker_peak_rss_mb"] for run in runs) if pipelines[name][0] else None,
        })
    rows = {row["pipeline"]: row for row in report.rows}
    report.summary = {
        "generate_clips_per_second_1_process": rows["generate (1 process)"]["clips_per_second"],
        "generate_cpu_us_per_clip": rows["generate (1 process)"]["cpu_us_per_clip"],
        f"generate_clips_per_second_{cpus}_processes": rows[f"generate ({cpus} process{'es' if cpus > 1 else ''})"]["clips_per_second"],
        "floor_clips_per_second": floor,
        **{f"{name.replace(', ', '_').replace(' ', '')}_clips_per_second": rows[name]["clips_per_second"] for name in pipelines if name != "floor"},
        "vlp_workers0_of_floor": rows["vlp, workers 0"]["of_floor"],
        # CPU time per clip in one process: what a loaded machine's other work does not inflate.
        "vlp_workers0_of_floor_by_cpu_time": ratio(rows["floor"]["cpu_us_per_clip"], rows["vlp, workers 0"]["cpu_us_per_clip"]),
        "peak_rss_mb_main": max(row["peak_rss_mb"] for name, row in rows.items() if name in pipelines),
    }
    report.notes.append("The floor and `vlp, workers 0` run in one process with one torch thread: equal work but for the "
                        "crop, normalisation, tokenising and batching vlp adds. CPU µs/clip counts the main process only.")
    return report.finish()


def _in_fresh_process(function, *args):
    """function(*args) in a spawned, non-daemonic process (DataLoader workers are its children), its result piped back."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_reply, args=(sender, function, args))
    process.start()
    sender.close()
    try:
        outcome, value = receiver.recv()
    except EOFError:
        outcome, value = "error", f"the measuring process died (exit code {process.join() or process.exitcode})"
    process.join()
    if outcome == "error":
        raise RuntimeError(value)
    return value


def _reply(sender, function, args) -> None:
    import traceback

    try:
        sender.send(("ok", function(*args)))
    except BaseException:
        sender.send(("error", traceback.format_exc()))
    finally:
        sender.close()


def _measure(kind: str, shards: list[str], clips: int, frames: int, workers: int, preset: str) -> dict:
    """One pipeline in this (fresh) process, clocked after its first items (first calls into torch and FFmpeg, worker
    start): clips, wall and CPU seconds, and the peak RSS of this process and of its DataLoader workers."""
    import torch

    # As under torchrun: DataLoader workers fork (a spawned process would otherwise spawn them too).
    multiprocessing.set_start_method("fork", force=True)
    torch.set_num_threads(1)
    items = _floor(shards, frames) if kind == "floor" else _vlp_stream(shards, clips, frames, workers, preset)
    warm_up = 16 if kind == "floor" else 2 * max(workers, 1)
    for _ in range(warm_up):
        next(items)
    started, cpu_started = time.perf_counter(), time.process_time()
    count = sum(items)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "clips": count, "seconds": seconds, "cpu_seconds": cpu_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def _floor(shards: list[str], frames: int):
    """1 per clip: read the shards, find each clip's video and decode the frames the training sampling picks."""
    from vlp.workloads.data.shards import iter_shard
    from vlp.workloads.data.video_codec import VIDEO_EXTENSIONS, decode_video

    for uri in shards:
        for index, sample in enumerate(iter_shard(uri)):
            extension = next(ext for ext in VIDEO_EXTENSIONS if ext in sample)
            decode_video(sample[extension], frames, "segment", seed=index, extension=extension)
            yield 1


def _vlp_stream(shards: list[str], clips: int, frames: int, workers: int, preset: str):
    """Clips per batch of the training loader over (about) one epoch; then its workers shut down, so their peak RSS
    counts among this process's children."""
    from vlp.platform.spec.data import AugmentSection
    from vlp.workloads.data.image_transforms import ImagePreprocess, ImageTransform
    from vlp.workloads.data.loader import make_train_loader
    from vlp.workloads.data.shapes_video import MOTIONS
    from vlp.workloads.data.tokenizers import build_tokenizer
    from vlp.workloads.data.video_samples import VideoTextDecoder
    from vlp.workloads.models.catalog import load_model_cfg

    model_cfg = load_model_cfg(preset)
    transform = ImageTransform(ImagePreprocess.from_model_cfg(model_cfg), AugmentSection(), exact=False)
    decoder = VideoTextDecoder(transform, frames, "segment", classes=MOTIONS)
    loader = make_train_loader(shards, decoder, build_tokenizer(model_cfg), BATCH_SIZE, 0, 1, 0, workers)
    batches, count = iter(loader), 0
    while count < clips - BATCH_SIZE * max(workers, 1):  # the epoch's last, partial batches fall into the next epoch
        videos, _texts, _targets = next(batches)
        count += videos.shape[0]
        yield videos.shape[0]
    del batches, loader  # the DataLoader's workers exit and are reaped
    gc.collect()

