"""Batches for training and evaluation from webdataset shards.

Training streams forever: each epoch reshuffles the shard order with (seed, epoch), gives each
(rank, worker) its own shards, and mixes samples through a shuffle buffer; the trainer decides when to stop.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from vlp.workloads.data.shards import iter_shard


class ImageTextDecoder:
    """Turns a raw sample into (normalised CHW float tensor, caption)."""

    def __init__(self, image_size: int, mean, std):
        self.image_size = image_size
        # (x / 255 - mean) / std as one multiply and one subtract.
        self.scale = (1.0 / (255.0 * torch.tensor(std))).view(3, 1, 1)
        self.shift = (torch.tensor(mean) / torch.tensor(std)).view(3, 1, 1)

    def __call__(self, sample: dict[str, Any]) -> tuple[torch.Tensor, str]:
        from torchvision.io import ImageReadMode, decode_image

        image_bytes = next(sample[ext] for ext in ("png", "jpg", "jpeg", "webp") if ext in sample)
        pixels = decode_image(torch.frombuffer(bytearray(image_bytes), dtype=torch.uint8), ImageReadMode.RGB)
        if pixels.shape[-2:] != (self.image_size, self.image_size):
            pixels = torch.nn.functional.interpolate(
                pixels[None].float(), size=(self.image_size, self.image_size), mode="bicubic", antialias=True
            )[0].clamp_(0, 255)
        caption = sample.get("txt", b"")
        return pixels.float().mul_(self.scale).sub_(self.shift), caption.decode("utf-8") if isinstance(caption, bytes) else caption


class TrainStream(IterableDataset):
    def __init__(self, shard_uris: list[str], decode: Callable, rank: int, world_size: int, seed: int, shuffle_buffer: int = 2000):
        self.shard_uris = shard_uris
        self.decode = decode
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer

    def __iter__(self) -> Iterator[tuple[torch.Tensor, str]]:
        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        consumer, consumers = self.rank * workers + worker_id, self.world_size * workers
        rng = random.Random(self.seed * 1_000_003 + consumer)
        buffer: list = []
        epoch = 0
        while True:
            order = list(self.shard_uris)
            random.Random(self.seed + epoch).shuffle(order)
            # Fewer shards than consumers: repeat the list so every consumer gets at least one.
            while len(order) < consumers:
                order += order
            for shard_uri in order[consumer::consumers]:
                for sample in iter_shard(shard_uri):
                    buffer.append(sample)
                    if len(buffer) >= self.shuffle_buffer:
                        yield self.decode(buffer.pop(rng.randrange(len(buffer))))
            epoch += 1


def collate_with(tokenizer) -> Callable:
    def collate(batch):
        images, captions = zip(*batch)
        return torch.stack(images), tokenizer(list(captions))

    return collate


def make_train_loader(shard_uris, decode, tokenizer, batch_size: int, rank: int, world_size: int, seed: int, workers: int) -> DataLoader:
    stream = TrainStream(shard_uris, decode, rank, world_size, seed)
    return DataLoader(
        stream,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_with(tokenizer),
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


def iter_eval_samples(shard_uris: list[str]) -> Iterator[dict[str, Any]]:
    """Every sample once, in shard order (for evaluation)."""
    for shard_uri in shard_uris:
        yield from iter_shard(shard_uri)
