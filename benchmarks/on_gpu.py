"""The GPU benchmark, one command: `python -m vlp.benchmarks.on_gpu [--gpus N] [--out DIR]`.

1. Training: ViT-B-32 at 224 px, bf16, global batch 256 per GPU, from JPEGs of mixed aspect ratios (shorter side 256
   px, as img2dataset writes them), same augmentation: vlp (DDP and FSDP) beside open_clip_train, samples/s and MFU
   (`vlp bench training`, alternating runs).
2. Data: the training loader per worker against its decode floor (`vlp bench data`), and the decode floor itself
   on the GPU: the same JPEGs decoded in batches of 256 by nvJPEG (`torchvision.io.decode_jpeg(device="cuda")`)
   against one CPU thread decoding them one by one.

Each part writes its JSON report under --out; the summary at the end is what docs/performance.md asks for.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

GPU_BATCH = 256


def decode_floor(data_dir: Path, images: int = 2048, repeats: int = 3) -> dict:
    """JPEG decode images/s: batched nvJPEG on the GPU against one CPU thread (the floor of a CPU loader worker)."""
    import tarfile

    from vlp.benchmarks.pairs_dataset import shard_paths
    from vlp.workloads.train.device_path import decode_jpeg_batch, gpu_jpeg_decoder_available

    encoded = []
    for shard in shard_paths(data_dir):
        with tarfile.open(shard) as archive:
            for member in archive:
                if member.name.endswith(".jpg"):
                    encoded.append(torch.frombuffer(bytearray(archive.extractfile(member).read()), dtype=torch.uint8))
        if len(encoded) >= images:
            break
    encoded = encoded[:images]
    rates = {"cpu_one_thread": [], "gpu_batched": []}
    torch.set_num_threads(1)
    for _ in range(repeats):
        started = time.perf_counter()
        decode_jpeg_batch(encoded, torch.device("cpu"))
        rates["cpu_one_thread"].append(len(encoded) / (time.perf_counter() - started))
        if gpu_jpeg_decoder_available():
            device = torch.device("cuda")
            decode_jpeg_batch(encoded[:GPU_BATCH], device)  # nvJPEG's handles and buffers are made on first use
            torch.cuda.synchronize()
            started = time.perf_counter()
            for start in range(0, len(encoded), GPU_BATCH):
                decode_jpeg_batch(encoded[start:start + GPU_BATCH], device)
            torch.cuda.synchronize()
            rates["gpu_batched"].append(len(encoded) / (time.perf_counter() - started))
    return {name: max(values) if values else None for name, values in rates.items()} | {"images": len(encoded)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=max(1, torch.cuda.device_count()))
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--skip-steps", type=int, default=40, help="left out of the steady state (start-up, compilation)")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers per GPU process")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, default=None, help="bf16 dense peak per GPU when the table lacks it")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark measures GPU training (see docs/performance.md, 'On a GPU')")

    from vlp.benchmarks.data_loading import run_data_loading
    from vlp.benchmarks.training_runs import TrainingSetup
    from vlp.benchmarks.training_throughput import SourceImages, run_training_throughput

    setup = TrainingSetup(preset="ViT-B-32", batch_size=GPU_BATCH * args.gpus, procs=args.gpus, steps=args.steps,
                          skip_steps=args.skip_steps, precision="bf16", device="cuda", workers=args.workers,
                          threads_per_proc=max(1, (torch.get_num_threads()) // args.gpus))
    training = run_training_throughput(setup, args.out / "work", args.repeats, peak_tflops_override=args.peak_tflops,
                                       images=SourceImages(256, "jpg", 1.5))
    training_path = training.write(args.out)
    data = run_data_loading(args.out / "work", samples=4000, repeats=args.repeats, s3=False)
    data_path = data.write(args.out)
    from vlp.benchmarks.pairs_dataset import ensure_pairs_dataset

    floor = decode_floor(ensure_pairs_dataset(args.out / "work" / "cache", 4000, 256, image_format="jpg", max_aspect_ratio=1.5))
    summary = {
        "training": {row["system"]: {"samples_per_second": row["samples_per_second"], "mfu": row["mfu"]} for row in training.rows},
        "data_loading_per_worker": {f"{row['pipeline']} ({row['storage']})": row["samples_per_second"] for row in data.rows},
        "jpeg_decode_images_per_second": floor,
        "reports": [str(training_path), str(data_path)],
    }
    (args.out / "gpu-summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
