"""Benchmark 2: data loading per worker, from webdataset shards on local disk and on s3://.

The shards hold img2dataset-like photos: JPEGs of mixed aspect ratios (by default the shorter side 256 px, the
longer up to 1.5× that), read for a 224 px model (ViT-B-32). Each pipeline runs in this one process with one torch
thread (what a DataLoader worker gets) and goes through the same shards once:

- `floor`: read each shard, walk its tar members and decode the image: the least any loader must do;
- `vlp`: vlp's training stream (shuffle buffer, decode, training augmentation, normalise, tokenise, batches);
- `open_clip`: open_clip_train's webdataset pipeline (PIL decode, its training transform, its tokenizer,
  batching), local disk only.

vlp and open_clip do equal work: the model's preprocessing and the same augmentation (open_clip's default
`aug_cfg`, RandomResizedCrop scale (0.9, 1.0), and vlp's default `data.augment`, which is the same).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable

from vlp.benchmarks.pairs_dataset import ensure_pairs_dataset, shard_paths
from vlp.benchmarks.report import BenchReport, Column
from vlp.benchmarks.stats import alternating, ratio, summarize

BATCH_SIZE = 250


def run_data_loading(workdir: Path, samples: int = 2000, repeats: int = 3, s3: bool = True, preset: str = "ViT-B-32",
                     source_size: int = 256, image_format: str = "jpg", max_aspect_ratio: float = 1.5) -> BenchReport:
    import torch

    from vlp.platform.spec.data import AugmentSection
    from vlp.workloads.data.image_transforms import ImageTransform
    from vlp.workloads.models.catalog import load_model_cfg
    from vlp.workloads.models.factory import build_model_from_cfg

    # Tokenizer and image settings of the model, built once: building the model is not data loading.
    built = build_model_from_cfg(load_model_cfg(preset))
    transform = ImageTransform(built.preprocess, AugmentSection())
    data = ensure_pairs_dataset(Path(workdir) / "cache", samples, source_size, image_format=image_format, max_aspect_ratio=max_aspect_ratio)
    local = [str(path) for path in shard_paths(data)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    size = "×".join(map(str, built.preprocess.size))
    report = BenchReport(
        name="data",
        title=f"Data loading per worker: {samples} {image_format.upper()} images (shorter side {source_size} px, aspect up to "
              f"{max_aspect_ratio:g}) to {size} px with training augmentation, {len(local)} webdataset shards, 1 thread",
        settings={"samples": samples, "repeats": repeats, "source_size": source_size, "image_format": image_format,
                  "max_aspect_ratio": max_aspect_ratio, "preset": preset, "model_input": size, "dataset": str(data),
                  "batch_size": BATCH_SIZE, "augment": transform.augment.model_dump(mode="json"),
                  "open_clip_aug_cfg": transform.augment.open_clip_aug_cfg()},
        columns=[
            Column("pipeline", "pipeline"), Column("storage", "storage"),
            Column("samples_per_second", "samples/s (median)", "{:.0f}"), Column("range", "min–max"),
            Column("us_per_sample", "µs/sample", "{:.0f}"), Column("cpu_us_per_sample", "CPU µs/sample", "{:.0f}"),
            Column("of_floor", "× floor rate", "{:.2f}"),
        ],
    )
    try:
        with _storage_places(Path(workdir), data, local, s3) as places:
            pipelines = {}
            for storage, uris in places.items():
                pipelines[("floor", storage)] = lambda uris=uris: decode_only(uris)
                pipelines[("vlp", storage)] = lambda uris=uris: vlp_stream(uris, built, transform, samples)
            pipelines[("open_clip", "local")] = lambda: open_clip_pipeline(local, built, transform)
            rates: dict[tuple[str, str], list[float]] = {key: [] for key in pipelines}
            cpu_costs: dict[tuple[str, str], list[float]] = {key: [] for key in pipelines}
            for repeat, key in alternating(list(pipelines), repeats):
                count, seconds, cpu_seconds = _timed(pipelines[key])
                rates[key].append(count / seconds)
                cpu_costs[key].append(cpu_seconds / count)
                report.runs.append({"pipeline": key[0], "storage": key[1], "repeat": repeat, "samples": count, "seconds": seconds,
                                    "cpu_seconds": cpu_seconds})
    finally:
        torch.set_num_threads(threads)

    for (pipeline, storage), values in rates.items():
        rate = summarize(values)
        floor = summarize(rates[("floor", storage)])["median"]
        report.rows.append({
            "pipeline": pipeline, "storage": storage, "samples_per_second": rate["median"],
            "range": f"{rate['min']:.0f}–{rate['max']:.0f}", "us_per_sample": 1e6 / rate["median"],
            # CPU time of this process per sample: what the machine's other load does not inflate.
            "cpu_us_per_sample": 1e6 * summarize(cpu_costs[(pipeline, storage)])["median"],
            "of_floor": ratio(rate["median"], floor),
        })
    report.summary = {f"{row['pipeline']}_{row['storage']}_samples_per_second": row["samples_per_second"] for row in report.rows}
    report.summary.update({f"{row['pipeline']}_{row['storage']}_of_floor": row["of_floor"] for row in report.rows})
    report.summary["vlp_over_open_clip_local"] = ratio(report.summary["vlp_local_samples_per_second"],
                                                       report.summary["open_clip_local_samples_per_second"])
    cpu = {(row["pipeline"], row["storage"]): row["cpu_us_per_sample"] for row in report.rows}
    report.summary["vlp_over_open_clip_local_by_cpu_time"] = ratio(cpu[("open_clip", "local")], cpu[("vlp", "local")])
    return report.finish()


def decode_only(shard_uris: list[str]) -> int:
    from vlp.workloads.data.image_transforms import decode_rgb
    from vlp.workloads.data.loader import ImageTextDecoder
    from vlp.workloads.data.shards import iter_shard

    count = 0
    for uri in shard_uris:
        for sample in iter_shard(uri):
            decode_rgb(next(sample[key] for key in ImageTextDecoder.IMAGE_KEYS if key in sample))
            count += 1
    return count


def vlp_stream(shard_uris: list[str], built, transform, samples: int) -> int:
    from vlp.workloads.data.loader import ImageTextDecoder, make_train_loader

    loader = make_train_loader(shard_uris, ImageTextDecoder(transform), built.tokenizer, BATCH_SIZE, 0, 1, 0, 0)
    count = 0
    for images, _texts, _targets in loader:
        count += images.shape[0]
        if count >= samples:
            break
    return count


def open_clip_pipeline(shard_uris: list[str], built, transform) -> int:
    """open_clip_train's get_wds_dataset after the shard shuffle: the per-sample work is the same."""
    import webdataset as wds

    from vlp.workloads.data.tokenizers import open_clip_tokenizer

    preprocess = transform.open_clip_transform()
    tokenizer = open_clip_tokenizer(built.model_cfg)  # what open_clip.get_tokenizer gives for the model
    pipeline = wds.DataPipeline(
        wds.SimpleShardList(shard_uris),
        wds.tarfile_to_samples(),
        wds.shuffle(bufsize=5000, initial=1000),
        wds.decode("pilrgb"),
        wds.rename(image="jpg;png;jpeg;webp", text="txt"),
        wds.map_dict(image=preprocess, text=lambda text: tokenizer(text)[0]),
        wds.to_tuple("image", "text"),
        wds.batched(BATCH_SIZE, partial=True),
    )
    return sum(images.shape[0] for images, _ in pipeline)


def _timed(work: Callable[[], int]) -> tuple[int, float, float]:
    """(samples, wall seconds, CPU seconds of this process)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    count = work()
    return count, time.perf_counter() - started, time.process_time() - cpu_started


@contextlib.contextmanager
def _storage_places(workdir: Path, data: Path, local: list[str], s3: bool):
    """{"local": uris} and, when asked, {"s3": uris} of the same shards copied to a loopback S3 server."""
    if not s3:
        yield {"local": local}
        return
    from vlp.benchmarks.loopback import loopback_s3, upload_directory

    with loopback_s3(workdir / "s3") as bucket:
        yield {"local": local, "s3": [uri for uri in upload_directory(data, f"{bucket}/pairs") if uri.endswith(".tar")]}
