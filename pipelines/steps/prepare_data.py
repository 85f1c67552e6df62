"""Make sure training and evaluation shards exist: generate the shapes dataset (cached by its parameters) or
check the shards the experiment file names."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import NamedTuple

from vlp.pipelines.steps.context import decode, storage_root
from vlp.platform.errors import StorageError
from vlp.platform.layout import dataset_uri
from vlp.platform.storage import join, open_storage
from vlp.platform.storage.locks import exclusive
from vlp.platform.tracking.runs import client

log = logging.getLogger(__name__)

EVAL_SEED_OFFSET = 1_000_003
VIDEO_SHARD_SIZE = 500  # clips are ~5 KB at 32 px against ~1 KB for an image: keep shards a similar size


class PreparedData(NamedTuple):
    train_uri: str
    eval_uri: str


def run(spec_json: str, runtime_json: str, run_id: str) -> PreparedData:
    from vlp.platform.tracking.datasets import log_datasets

    spec, runtime = decode(spec_json, runtime_json)
    if spec.data.source == "shards":
        from vlp.workloads.data.shards import list_shards

        list_shards(spec.data.train)
        eval_uri = spec.data.eval or ""
        if eval_uri:
            list_shards(eval_uri)
        log_datasets(client(runtime.tracking_uri), run_id, {"train": spec.data.train, "eval": eval_uri})
        return PreparedData(spec.data.train, eval_uri)

    shapes = spec.data.shapes
    train, held_out = _video_params(shapes) if shapes.video is not None else _image_params(shapes)
    root = storage_root(spec, runtime)
    train_uri, train_stats = ensure_shapes(root, train)
    eval_uri, _ = ensure_shapes(root, held_out)
    metrics = {"data/train_samples": train.samples, "data/eval_samples": held_out.samples}
    if train_stats.get("generated"):
        metrics["data/generate_samples_per_second"] = train_stats["samples_per_second"]
    mlflow_client = client(runtime.tracking_uri)
    for key, value in metrics.items():
        mlflow_client.log_metric(run_id, key, value)
    mlflow_client.set_tag(run_id, "vlp.data.train", train_uri)
    mlflow_client.set_tag(run_id, "vlp.data.eval", eval_uri)
    log_datasets(mlflow_client, run_id, {"train": train_uri, "eval": eval_uri})
    return PreparedData(train_uri, eval_uri)


def _image_params(shapes):
    from vlp.workloads.data.shapes import ShapesParams

    common = dict(
        image_size=shapes.image_size, max_aspect_ratio=shapes.max_aspect_ratio, image_format=shapes.image_format,
        jpeg_quality=shapes.jpeg_quality, styles=tuple(shapes.styles), shard_size=shapes.shard_size,
    )
    train = ShapesParams(
        samples=shapes.train_samples, seed=shapes.seed, min_objects=1, max_objects=shapes.max_objects,
        partial_caption_rate=shapes.partial_caption_rate, caption_noise_rate=shapes.caption_noise_rate, **common,
    )
    # Held-out images hold one shape each unless asked (so the zero-shot label is unambiguous); captions are clean.
    held_out = ShapesParams(
        samples=shapes.eval_samples, seed=shapes.seed + EVAL_SEED_OFFSET, min_objects=1, max_objects=shapes.eval_max_objects,
        partial_caption_rate=0.0, caption_noise_rate=0.0, **common,
    )
    return train, held_out


def _video_params(shapes):
    from vlp.workloads.data.shapes_video import VideoShapesParams

    video = shapes.video
    common = dict(
        image_size=shapes.image_size, frames=video.frames, fps=video.fps, motions=tuple(video.motions),
        styles=tuple(shapes.styles), crf=video.crf, shard_size=min(shapes.shard_size, VIDEO_SHARD_SIZE),
    )
    train = VideoShapesParams(
        samples=shapes.train_samples, seed=shapes.seed, partial_caption_rate=shapes.partial_caption_rate,
        motion_caption_rate=video.motion_caption_rate, still_fraction=video.still_fraction,
        labelled_fraction=video.labelled_fraction, **common,
    )
    # Held-out clips all move and their captions are clean and name the motion, for text-to-video retrieval.
    held_out = VideoShapesParams(
        samples=shapes.eval_samples, seed=shapes.seed + EVAL_SEED_OFFSET, partial_caption_rate=0.0, motion_caption_rate=1.0,
        **common,
    )
    return train, held_out


def ensure_shapes(root: str, params) -> tuple[str, dict]:
    """Generate unless a complete copy (its manifest is written last) already exists."""
    from dataclasses import asdict

    from vlp.workloads.data.shapes import generate_shapes
    from vlp.workloads.data.shapes_video import VideoShapesParams, generate_shapes_video

    video = isinstance(params, VideoShapesParams)
    generate = generate_shapes_video if video else generate_shapes
    digest = hashlib.sha256(json.dumps(asdict(params), sort_keys=True).encode()).hexdigest()[:12]
    uri = dataset_uri(root, f"shapes-video-{digest}" if video else f"shapes-{digest}")
    manifest_uri = join(uri, "manifest.json")
    storage = open_storage(manifest_uri)
    # Runs started together on one machine generate the same dataset: one does, the others then reuse it.
    with exclusive(uri):
        if storage.exists(manifest_uri):
            log.info("reusing shapes dataset %s", uri)
            return uri, {"generated": False}
        try:
            manifest = generate(params, uri)
        except OSError as err:
            raise StorageError(f"{uri}: cannot write the dataset ({err})") from None
    log.info("generated %d samples at %.0f samples/s into %s", params.samples, manifest["samples_per_second"], uri)
    return uri, {"generated": True, "samples_per_second": manifest["samples_per_second"]}
