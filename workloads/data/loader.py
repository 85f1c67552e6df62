"""Batches for training and evaluation from webdataset shards.

Training streams forever: each epoch reshuffles the shard order with (seed, epoch), gives each
(rank, worker) its own shards, and mixes samples through a shuffle buffer; the trainer decides when to stop.
Positions are resumable and bad samples are skipped and counted, up to a limit.
"""

from __future__ import annotations

import collections
import itertools
import logging
import random
from typing import Any, Callable, Iterator, NamedTuple

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from vlp.platform.storage import open_storage
from vlp.workloads.data.image_transforms import ImageTransform
from vlp.workloads.data.shards import iter_shard, iter_shard_bytes

log = logging.getLogger(__name__)


class ImageTextDecoder:
    """Turns a raw sample into (3×H×W uint8 image, caption, targets) with the model's training transform; `normalise`
    turns a stacked batch of those into the model's float input (once per batch: a quarter of the memory traffic of
    normalising each image and stacking floats).

    This is the sample decoder of image-text pretraining (no targets). Every sample decoder has this shape:
    `(sample, seed) -> (uint8 pixels, text, targets dict)` plus `normalise`; see sample_decoders.py."""

    IMAGE_KEYS = ("png", "jpg", "jpeg", "webp")

    def __init__(self, transform: ImageTransform):
        self.transform = transform

    def __call__(self, sample: dict[str, Any], seed: int | None = None) -> tuple[torch.Tensor, str, dict]:
        image_bytes = next((sample[ext] for ext in self.IMAGE_KEYS if ext in sample), None)
        if image_bytes is None:
            raise ValueError(f"no image field (looked for {', '.join(self.IMAGE_KEYS)}; found {', '.join(sorted(sample))})")
        caption = sample.get("txt", b"")
        return self.transform.to_uint8(image_bytes, seed), caption.decode("utf-8") if isinstance(caption, bytes) else caption, {}

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return self.transform.normalise(images)


def sample_seed(seed: int, position: "StreamPosition") -> int:
    """A sample's augmentation seed from the run seed and where the sample stands in its consumer's stream, so a
    resumed run replays the same crops. (Hashes of int tuples do not depend on PYTHONHASHSEED.)"""
    return hash((seed, position.consumer, position.epoch, position.drawn)) & 0x7FFF_FFFF_FFFF_FFFF


class StreamPosition(NamedTuple):
    """Where one consumer (a (rank, DataLoader worker) pair) stands in its infinite stream of samples."""

    consumer: int
    epoch: int
    drawn: int
    """Samples drawn from this epoch's shuffle so far, decoded or skipped."""
    skipped: int
    """Samples (and truncated or corrupt shards) skipped since the run began."""


class BadShard(NamedTuple):
    """Stands in the stream where a shard turned out truncated or corrupt."""

    uri: str
    error: str


class BadDataError(RuntimeError):
    """More samples failed to decode than `data.max_bad_samples` allows."""


class TrainStream(IterableDataset):
    """Each epoch deals the shuffled shards out to the consumers and shuffles each consumer's samples through a
    buffer that is drained at the end of the epoch, so epoch `e` of consumer `c` depends only on (seed, e, c).
    That makes a position (epoch, samples drawn) enough to resume exactly: the epoch is replayed from its
    start without decoding anything until the position is reached.
    """

    def __init__(self, shard_uris: list[str], decode: ImageTextDecoder, rank: int, world_size: int, seed: int,
                 shuffle_buffer: int = 2000, max_bad_samples: int = 100):
        self.shard_uris = shard_uris
        self.decode = decode
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.max_bad_samples = max_bad_samples
        # Set by TrainLoader.load_state_dict before the first iteration (workers copy the stream when they start).
        self.start: dict[int, StreamPosition] = {}
        self.rotation = 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, str, dict, StreamPosition]]:
        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        # The DataLoader takes batches from its workers round-robin starting at worker 0; after a resume at
        # batch n, worker 0 must continue the consumer whose turn batch n is.
        slot = (worker_id + self.rotation) % workers
        consumer, consumers = self.rank * workers + slot, self.world_size * workers
        start = self.start.get(consumer, StreamPosition(consumer, 0, 0, 0))
        skipped, bad_by_shard = start.skipped, collections.Counter()
        for epoch in itertools.count(start.epoch):
            replayed = start.drawn if epoch == start.epoch else 0
            for drawn, sample in enumerate(self._epoch(epoch, consumer, consumers), start=1):
                if drawn <= replayed:
                    continue
                if isinstance(sample, BadShard):
                    shard, problem = sample.uri, sample.error
                else:
                    position = StreamPosition(consumer, epoch, drawn, skipped)
                    try:
                        pixels, caption, targets = self.decode(sample, sample_seed(self.seed, position))
                    except Exception as err:
                        shard, problem = sample.get("__url__", "?"), f"sample {sample.get('__key__')!r}: {type(err).__name__}: {err}"
                    else:
                        yield pixels, caption, targets, position
                        continue
                skipped += 1
                bad_by_shard[shard] += 1
                log.warning("skipped bad data in %s (%s); %d skipped so far", shard, problem[:300], skipped)
                if skipped > self.max_bad_samples:
                    worst, count = bad_by_shard.most_common(1)[0]
                    raise BadDataError(
                        f"data: {skipped} samples failed to decode, more than data.max_bad_samples={self.max_bad_samples}; "
                        f"shard {worst} had {count} of them (last: {problem[:300]}); "
                        "regenerate or remove the shard, or raise data.max_bad_samples"
                    )

    def _epoch(self, epoch: int, consumer: int, consumers: int) -> Iterator[dict[str, Any] | BadShard]:
        order = list(self.shard_uris)
        random.Random(self.seed + epoch).shuffle(order)
        # Fewer shards than consumers: repeat the list so every consumer gets at least one.
        while len(order) < consumers:
            order += order
        rng = random.Random(f"vlp-stream/{self.seed}/{epoch}/{consumer}")
        buffer: list = []
        for shard_uri in order[consumer::consumers]:
            # A store that stays down fails the run here (after the storage retries); only parsing is "bad data".
            data = open_storage(shard_uri).read_bytes(shard_uri)
            try:
                for sample in iter_shard_bytes(shard_uri, data):
                    buffer.append(sample)
                    if len(buffer) >= self.shuffle_buffer:
                        yield _pop_random(buffer, rng)
            except Exception as err:
                yield BadShard(shard_uri, f"truncated or corrupt shard: {type(err).__name__}: {err}")
        while buffer:
            yield _pop_random(buffer, rng)


def _pop_random(buffer: list, rng: random.Random):
    index = rng.randrange(len(buffer))
    buffer[index], buffer[-1] = buffer[-1], buffer[index]
    return buffer.pop()


def collate_with(tokenizer, decode) -> Callable:
    """Stacks a batch. A decoder with a `batch(pixels, targets)` method assembles its pixels itself (the device
    decoding path hands encoded images over); otherwise the uint8 pixels are stacked and normalised."""
    assemble = getattr(decode, "batch", None)

    def collate(batch):
        pixels, captions, targets, positions = zip(*batch)
        targets = [dict(sample) for sample in targets]
        pixels = assemble(pixels, targets) if assemble is not None else decode.normalise(torch.stack(pixels))
        stacked_targets = {key: torch.stack([torch.as_tensor(sample[key]) for sample in targets]) for key in targets[0]}
        # A batch comes from one consumer: its last sample's position is where that consumer stands after it.
        return pixels, tokenizer(list(captions)), stacked_targets, positions[-1]

    return collate


class TrainLoader:
    """Batches from a TrainStream, remembering where each of this rank's consumers stands, so a checkpoint
    can store the data position and a resumed run sees exactly the batches an uninterrupted run would."""

    def __init__(self, stream: TrainStream, tokenizer, batch_size: int, workers: int, pin_memory: bool = False):
        self.stream = stream
        self.workers = workers
        self.positions: dict[int, StreamPosition] = {}
        self._last: tuple[int, StreamPosition | None] | None = None
        self.loader = DataLoader(
            stream,
            batch_size=batch_size,
            num_workers=workers,
            collate_fn=collate_with(tokenizer, stream.decode),
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
            # Page-locked batches let the trainer's `.to(device, non_blocking=True)` copy overlap with compute (GPU only).
            pin_memory=pin_memory,
            # Starting an iterator draws a worker seed from this generator; from torch's global one, it would shift
            # every later draw of a resumed run (masks, negatives, dropout) by one. The stream seeds itself.
            generator=torch.Generator(),
        )

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]]:
        """(pixels, token ids, targets) per batch; targets maps a name to a batch tensor (empty for image-text pairs)."""
        for pixels, texts, targets, position in self.loader:
            self._last = (position.consumer, self.positions.get(position.consumer))
            self.positions[position.consumer] = position
            yield pixels, texts, targets

    def give_back_last_batch(self) -> None:
        """The last batch was fetched but not trained on (the loop stopped first): forget its position, so a
        checkpoint written now resumes with that batch."""
        if self._last is None:
            return
        consumer, previous = self._last
        if previous is None:
            self.positions.pop(consumer, None)
        else:
            self.positions[consumer] = previous
        self._last = None

    @property
    def skipped(self) -> int:
        """Bad samples and shards skipped by this rank's consumers since the run began."""
        return sum(position.skipped for position in self.positions.values())

    def state_dict(self) -> dict[int, tuple[int, int, int, int]]:
        return {consumer: tuple(position) for consumer, position in self.positions.items()}

    def load_state_dict(self, positions: dict[int, tuple], batches_done: int) -> None:
        """Continue from the positions of every consumer of the run (gathered from all ranks); call before iterating."""
        consumers_per_rank = max(1, self.workers)
        mine = range(self.stream.rank * consumers_per_rank, (self.stream.rank + 1) * consumers_per_rank)
        saved = {int(consumer): StreamPosition(*position) for consumer, position in positions.items()}
        if saved and len(saved) != self.stream.world_size * consumers_per_rank:
            # Another world size or worker count deals the shards differently: no exact resume is possible.
            epoch = max(position.epoch for position in saved.values()) + 1
            skipped = max(position.skipped for position in saved.values())
            log.warning("data layout changed since the checkpoint (%d consumers, now %d): starting epoch %d afresh",
                        len(saved), self.stream.world_size * consumers_per_rank, epoch)
            saved = {consumer: StreamPosition(consumer, epoch, 0, skipped) for consumer in mine}
        self.stream.start = {consumer: saved[consumer] for consumer in mine if consumer in saved}
        self.stream.rotation = batches_done % consumers_per_rank
        self.positions = dict(self.stream.start)


def make_train_loader(shard_uris, decode, tokenizer, batch_size: int, rank: int, world_size: int, seed: int, workers: int,
                      max_bad_samples: int = 100, pin_memory: bool = False) -> TrainLoader:
    stream = TrainStream(shard_uris, decode, rank, world_size, seed, max_bad_samples=max_bad_samples)
    return TrainLoader(stream, tokenizer, batch_size, workers, pin_memory)


def iter_eval_samples(shard_uris: list[str]) -> Iterator[dict[str, Any]]:
    """Every sample once, in shard order (for evaluation)."""
    for shard_uri in shard_uris:
        yield from iter_shard(shard_uri)
