"""Benchmark 2: data loading per worker, from webdataset shards on local disk and on s3://.

Each pipeline runs in this one process with one torch thread (what a DataLoader worker gets) and goes through
the same shards once:

- `floor`: read each shard, walk its tar members and decode the PNG: the least any loader must do;
- `vlp`: vlp's training stream (shuffle buffer, decode, normalise, tokenise, collate into batches);
- `open_clip`: open_clip_train's webdataset pipeline (PIL decode of every image field, its train transform,
  its tokenizer, batching), local disk only.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable

from vlp.workloads.bench.pairs_dataset import ensure_pairs_dataset, shard_paths
from vlp.workloads.bench.report import BenchReport, Column
from vlp.workloads.bench.stats import alternating, ratio, summarize

BATCH_SIZE = 250


def run_data_loading(workdir: Path, samples: int = 4000, repeats: int = 3, s3: bool = True, preset: str = "shapes-rn-tiny") -> BenchReport:
    import torch

    from vlp.workloads.models.catalog import load_model_cfg
    from vlp.workloads.models.factory import build_model_from_cfg

    model_cfg = load_model_cfg(preset)
    # Tokenizer and image settings of the model, built once: building the model is not data loading.
    built = build_model_from_cfg(model_cfg)
    image_size = model_cfg["vision_cfg"]["image_size"]
    image_size = image_size if isinstance(image_size, int) else image_size[0]
    data = ensure_pairs_dataset(Path(workdir) / "cache", samples, image_size)
    local = [str(path) for path in shard_paths(data)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    report = BenchReport(
        name="data",
        title=f"Data loading per worker: {samples} samples of {image_size} px from {len(local)} webdataset shards, 1 thread",
        settings={"samples": samples, "repeats": repeats, "image_size": image_size, "preset": preset, "dataset": str(data),
                  "batch_size": BATCH_SIZE},
        columns=[
            Column("pipeline", "pipeline"), Column("storage", "storage"),
            Column("samples_per_second", "samples/s (median)", "{:.0f}"), Column("range", "min–max"),
            Column("us_per_sample", "µs/sample", "{:.0f}"), Column("of_floor", "× floor rate", "{:.2f}"),
        ],
    )
    try:
        with _storage_places(Path(workdir), data, local, s3) as places:
            pipelines = {}
            for storage, uris in places.items():
                pipelines[("floor", storage)] = lambda uris=uris: decode_only(uris)
                pipelines[("vlp", storage)] = lambda uris=uris: vlp_stream(uris, built, samples)
            pipelines[("open_clip", "local")] = lambda: open_clip_pipeline(local, built)
            rates: dict[tuple[str, str], list[float]] = {key: [] for key in pipelines}
            for repeat, key in alternating(list(pipelines), repeats):
                count, seconds = _timed(pipelines[key])
                rates[key].append(count / seconds)
                report.runs.append({"pipeline": key[0], "storage": key[1], "repeat": repeat, "samples": count, "seconds": seconds})
    finally:
        torch.set_num_threads(threads)

    for (pipeline, storage), values in rates.items():
        rate = summarize(values)
        floor = summarize(rates[("floor", storage)])["median"]
        report.rows.append({
            "pipeline": pipeline, "storage": storage, "samples_per_second": rate["median"],
            "range": f"{rate['min']:.0f}–{rate['max']:.0f}", "us_per_sample": 1e6 / rate["median"],
            "of_floor": ratio(rate["median"], floor),
        })
    report.summary = {f"{row['pipeline']}_{row['storage']}_samples_per_second": row["samples_per_second"] for row in report.rows}
    report.summary.update({f"{row['pipeline']}_{row['storage']}_of_floor": row["of_floor"] for row in report.rows})
    return report.finish()


def decode_only(shard_uris: list[str]) -> int:
    from torchvision.io import ImageReadMode, decode_image
    import torch

    from vlp.workloads.data.shards import iter_shard

    count = 0
    for uri in shard_uris:
        for sample in iter_shard(uri):
            decode_image(torch.frombuffer(bytearray(sample["png"]), dtype=torch.uint8), ImageReadMode.RGB)
            count += 1
    return count


def vlp_stream(shard_uris: list[str], built, samples: int) -> int:
    from vlp.workloads.data.loader import ImageTextDecoder, make_train_loader

    decode = ImageTextDecoder(built.image_size, built.image_mean, built.image_std)
    loader = make_train_loader(shard_uris, decode, built.tokenizer, BATCH_SIZE, 0, 1, 0, 0)
    count = 0
    for images, texts in loader:
        count += images.shape[0]
        if count >= samples:
            break
    return count


def open_clip_pipeline(shard_uris: list[str], built) -> int:
    """open_clip_train's get_wds_dataset after the shard shuffle: the per-sample work is the same."""
    import webdataset as wds
    from open_clip.tokenizer import SimpleTokenizer
    from open_clip.transform import image_transform

    preprocess = image_transform(built.image_size, is_train=True, mean=built.image_mean, std=built.image_std)
    tokenizer = SimpleTokenizer(context_length=built.model_cfg["text_cfg"].get("context_length", 77))
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


def _timed(work: Callable[[], int]) -> tuple[int, float]:
    started = time.perf_counter()
    count = work()
    return count, time.perf_counter() - started


@contextlib.contextmanager
def _storage_places(workdir: Path, data: Path, local: list[str], s3: bool):
    """{"local": uris} and, when asked, {"s3": uris} of the same shards copied to a loopback S3 server."""
    if not s3:
        yield {"local": local}
        return
    from vlp.workloads.bench.loopback_s3 import loopback_s3, upload_directory

    with loopback_s3(workdir / "s3") as bucket:
        yield {"local": local, "s3": [uri for uri in upload_directory(data, f"{bucket}/pairs") if uri.endswith(".tar")]}
