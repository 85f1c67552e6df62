"""Video files in and out: frames → H.264 MP4 bytes, and MP4 (or any container FFmpeg reads) bytes → T sampled
frames as a uint8 T×3×H×W tensor. PyAV (FFmpeg's libraries) does the work; torchvision 0.29 decodes no video.

Frame sampling picks which T of a clip's N frames a model sees:
- `uniform` (evaluation): the middle frame of each of T equal segments, so the picks are evenly spaced and the same
  every time (TSN's test-time sampling);
- `segment` (training): one frame drawn at random inside each of the T segments (TSN's training sampling), from
  `random.Random(seed)`, so a sample's draw replays with its seed.

Decoding stops after the last picked frame and converts only picked frames to RGB; on long videos it seeks to the
key frame before a pick far ahead instead of decoding every frame in between (as long as seeking lands past where
sequential decoding stands; key frames far apart make it pointless and it is then given up for that video).
"""

from __future__ import annotations

import collections
import io
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

FRAME_SAMPLINGS = ("uniform", "segment")
VIDEO_EXTENSIONS = ("mp4", "webm", "mkv", "mov", "avi", "m4v")
"""Webdataset entries and file suffixes read as videos, in the order a sample's entries are tried."""
DEMUXERS = {"mp4": "mp4", "m4v": "mp4", "mov": "mov", "webm": "matroska", "mkv": "matroska", "avi": "avi"}
"""FFmpeg's demuxer for each of VIDEO_EXTENSIONS."""
VIDEO_CODEC = "libx264"
PIXEL_FORMAT = "yuv420p"  # 4:2:0 chroma: what players and every H.264 decoder read; needs even sides
DEFAULT_CRF = 12  # x264 constant-rate factor; low, because 32 px shapes lose their colour edges to chroma blur first
SEEK_GAP = 48  # frames: decode through shorter gaps; seek over longer ones


@dataclass(frozen=True)
class VideoInfo:
    """What a video file's header says about its first video stream."""

    codec: str
    width: int
    height: int
    frames: int
    """Frame count from the container (0 where it does not record one, e.g. some WebM files)."""
    fps: float
    pix_fmt: str | None
    container: str


def encode_video(frames: np.ndarray, fps: int, crf: int = DEFAULT_CRF) -> bytes:
    """T×H×W×3 uint8 RGB frames → an H.264 (yuv420p) MP4 file, byte-identical for equal input on one FFmpeg build
    (one thread converts and encodes)."""
    import av

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be a T×H×W×3 uint8 array (got {frames.dtype} {tuple(frames.shape)})")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"H.264 in {PIXEL_FORMAT} needs even frame sides (got {width}×{height})")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream(VIDEO_CODEC, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, PIXEL_FORMAT
        stream.codec_context.thread_count = 1
        # mbtree off: with x264's macroblock-tree rate control the same 32 px frames now and then (about 1 encode in
        # 400 on a loaded machine) came out as a different file; without it none of 3,600 did.
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1", "x264-params": "mbtree=0"}
        for frame in frames:
            # Converted here on one thread (swscale's default is as many as there are CPUs).
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            container.mux(stream.encode(picture.reformat(format=PIXEL_FORMAT, threads=1)))
        container.mux(stream.encode())
    return buffer.getvalue()


def frame_indices(total: int, count: int, sampling: str = "uniform", seed: int | None = None) -> list[int]:
    """Which `count` of `total` frames to take (see the module docstring); with fewer frames than `count` some repeat."""
    if total < 1 or count < 1:
        raise ValueError(f"need at least one frame to take and one to take from (total={total}, count={count})")
    if sampling not in FRAME_SAMPLINGS:
        raise ValueError(f"frame sampling must be one of {', '.join(FRAME_SAMPLINGS)} (got {sampling!r})")
    if sampling == "uniform":
        return [min(int((i + 0.5) * total / count), total - 1) for i in range(count)]
    coin = random.Random(seed)
    picks = []
    for i in range(count):
        start, stop = i * total // count, (i + 1) * total // count
        picks.append(coin.randrange(start, stop) if stop > start else min(start, total - 1))
    return picks


def probe_video(data: bytes, name: str = "video") -> VideoInfo:
    """The header of an encoded video (nothing is decoded). Raises ValueError naming `name` for bytes FFmpeg cannot
    open or a file with no video stream."""
    with _open(data, name) as container:
        stream = _video_stream(container, name)
        rate = stream.average_rate or stream.guessed_rate
        return VideoInfo(
            codec=stream.codec_context.name, width=stream.codec_context.width, height=stream.codec_context.height,
            frames=int(stream.frames), fps=float(rate) if rate else 0.0,
            pix_fmt=stream.codec_context.pix_fmt, container=container.format.name,
        )


def decode_video(data: bytes, count: int | None = None, sampling: str = "uniform", seed: int | None = None,
                 name: str = "video", threads: int = 1, extension: str | None = None) -> "torch.Tensor":
    """`count` frames (all of them when None) picked by `sampling` → uint8 T×3×H×W RGB.

    Raises ValueError naming `name` when the bytes are not a video FFmpeg reads, hold no video stream, or no frame
    decodes (the training loader skips such samples and counts them). `threads`: FFmpeg decoding threads (one per
    DataLoader worker is what pays at small sizes). `extension` (mp4, webm, ...) names the demuxer to try first,
    which spares FFmpeg probing every format (~30% of opening a small clip)."""
    import av
    import torch

    with _open(data, name, extension) as container:
        stream = _video_stream(container, name)
        stream.codec_context.thread_count = threads
        try:
            total = stream.frames or _estimated_frames(stream, container)
            if count is None or not total:
                frames = [frame for frame in container.decode(stream)]
                if not frames:
                    raise ValueError(f"{name}: no frame decodes")
                picks = list(range(len(frames))) if count is None else frame_indices(len(frames), count, sampling, seed)
                chosen = {index: frames[index] for index in set(picks)}
            else:
                picks = frame_indices(total, count, sampling, seed)
                chosen = _decode_picked(container, stream, sorted(set(picks)), name)
            rgb = {index: frame.reformat(format="rgb24", threads=1).to_ndarray() for index, frame in chosen.items()}
        except av.FFmpegError as err:
            raise ValueError(f"{name}: the video does not decode ({err})") from None
    # The header may promise more frames than the file holds (a cut-short download): those picks repeat the last frame.
    last = max(rgb)
    stacked = np.stack([rgb[index] if index in rgb else rgb[last] for index in picks])
    return torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous()


def _decode_picked(container, stream, wanted: list[int], name: str) -> dict:
    """Decode up to the last wanted frame; returns frame index → av.VideoFrame for the wanted ones.

    Until the first seek frames are counted (exact whatever the timestamps); after one, a frame's index comes
    from its timestamp and the stream's average rate."""
    chosen: dict = {}
    pending = collections.deque(wanted)
    position = -1  # index of the last frame decoded
    frames = iter(container.decode(stream))
    counted, may_seek = True, stream.average_rate is not None
    while pending:
        target = pending[0]
        landed = None
        if may_seek and target - position > SEEK_GAP:
            container.seek(_pts_of(stream, target), stream=stream, backward=True)
            frames, counted, landed = iter(container.decode(stream)), False, position
        for frame in frames:
            index = position + 1 if counted or frame.pts is None else _index_of(stream, frame)
            if landed is not None:
                # The key frame before the target lies behind where we stood: seeking again would only decode again.
                may_seek, landed = index > landed, None
            position = index
            if position >= target:
                break
        else:
            break  # the file ended before the header said
        while pending and pending[0] <= position:
            chosen[pending.popleft()] = frame
    if not chosen:
        raise ValueError(f"{name}: no frame decodes")
    return chosen


def _pts_of(stream, index: int) -> int:
    rate = stream.average_rate or stream.guessed_rate
    start = stream.start_time or 0
    return start + int(round(index / (float(rate) * float(stream.time_base))))


def _index_of(stream, frame) -> int:
    rate = stream.average_rate or stream.guessed_rate
    start = stream.start_time or 0
    return int(round((frame.pts - start) * float(stream.time_base) * float(rate)))


def _estimated_frames(stream, container) -> int:
    """Frames from duration × rate where the container records no count (0 when it records neither)."""
    rate = stream.average_rate or stream.guessed_rate
    if stream.duration is not None and rate:
        return max(0, math.floor(float(stream.duration * stream.time_base) * float(rate) + 0.5))
    if container.duration is not None and rate:
        return max(0, math.floor(container.duration / 1_000_000 * float(rate) + 0.5))
    return 0


def _open(data: bytes, name: str, extension: str | None = None):
    import av

    demuxer = DEMUXERS.get((extension or "").lower())
    if demuxer is not None:
        try:
            return av.open(io.BytesIO(data), "r", format=demuxer)
        except av.FFmpegError:
            pass  # misnamed: let FFmpeg probe
    try:
        return av.open(io.BytesIO(data), "r")
    except av.FFmpegError as err:
        raise ValueError(f"{name}: not a video file FFmpeg reads ({len(data)} bytes; {err})") from None


def _video_stream(container, name: str):
    if not container.streams.video:
        kinds = ", ".join(sorted({stream.type for stream in container.streams})) or "none"
        raise ValueError(f"{name}: no video stream (streams: {kinds})")
    return container.streams.video[0]
