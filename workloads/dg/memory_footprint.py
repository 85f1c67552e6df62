"""Peak resident memory of loading DG data, at 1× and k× the images: it should stay flat as the data grows.

    python -m vlp.workloads.dg.memory_footprint --samples 400 --scale 10 --image-size 224 --workdir /tmp/dg-rss

Generates one-shape JPEG shapes datasets (shorter side 256 px, aspect ratios up to 2, as photos come), then in a
fresh process per size streams each into `load_domain_data` at the model's input size and reads every row back
in batches, as the frozen-feature pass does. Prints the child's peak RSS beside what holding the decoded images
in memory would take (N × 3 × S × S bytes; the loader before streaming held that, and twice while stacking).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def measure(dataset: str, image_size: int, batch: int) -> dict:
    """In this process: load, read every row back once, report peak RSS."""
    import torch

    from vlp.platform.spec.dg import DgSection
    from vlp.workloads.data.image_transforms import ImagePreprocess
    from vlp.workloads.dg.data import load_domain_data, open_dg_source
    from vlp.workloads.evaluation.transform import EvalImageTransform

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    preprocess = ImagePreprocess(size=(image_size, image_size), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    data = load_domain_data(open_dg_source(DgSection(), dataset), EvalImageTransform(preprocess))
    loaded = time.perf_counter()
    checksum = 0.0
    for start in range(0, len(data.labels), batch):
        checksum += float(data.pixels(torch.arange(start, min(start + batch, len(data.labels)))).mean())
    return {
        "images": len(data.labels),
        "load_seconds": round(loaded - started, 1),
        "read_back_seconds": round(time.perf_counter() - loaded, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_loading_mb": round(baseline / 1024, 1),
        "spill_file_mb": round(data.images.nbytes / 2**20, 1),
        "images_in_memory_would_be_mb": round(len(data.labels) * 3 * image_size**2 / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=400, help="images at 1×")
    parser.add_argument("--scale", type=int, default=10, help="the larger dataset has this many times the images")
    parser.add_argument("--image-size", type=int, default=224, help="the model's input side")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--workdir", default="/tmp/vlp-dg-memory")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the child's dataset
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.image_size, args.batch)))
        return

    from vlp.workloads.data.shapes import ShapesParams, generate_shapes

    for samples in (args.samples, args.samples * args.scale):
        folder = Path(args.workdir) / f"shapes-{samples}"
        if not (folder / "manifest.json").exists():
            params = ShapesParams(samples=samples, seed=0, image_size=256, max_aspect_ratio=2.0, image_format="jpg",
                                  min_objects=1, max_objects=1, shard_size=500)
            generate_shapes(params, str(folder))
        child = [sys.executable, "-m", "vlp.workloads.dg.memory_footprint", "--measure", str(folder),
                 "--image-size", str(args.image_size), "--batch", str(args.batch)]
        result = json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        print(json.dumps({"samples": samples, **result}))


if __name__ == "__main__":
    main()
