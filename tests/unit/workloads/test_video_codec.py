"""Video files in and out: real H.264 MP4s, frame sampling, decoding only the picked frames, clear errors."""

from __future__ import annotations

import io
import struct

import av
import numpy as np
import pytest
from video_files import audio_only_mp4

from vlp.workloads.data.video_codec import decode_video, encode_video, frame_indices, probe_video


def _numbered_frames(count: int, size: int = 32) -> np.ndarray:
    """Frames that differ from each other everywhere: each frame's grey level and a bright row move with its index."""
    frames = np.zeros((count, size, size, 3), np.uint8)
    for i in range(count):
        frames[i, :, : size // 2] = (i * 7) % 256
        frames[i, :, size // 2 :] = (i * 13) % 256
        frames[i, i % size, :] = 255
    return frames


def _encode_with_key_frames_every(frames: np.ndarray, gop: int) -> bytes:
    """An MP4 with a key frame every `gop` frames and B-frames (x264's default preset), as camera footage has."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"g": str(gop), "crf": "10", "threads": "1"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def _mp4_boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[str, int, int]]:
    """(type, payload start, payload end) of the ISO-BMFF boxes in data[start:end], read by hand (not FFmpeg)."""
    boxes, position, end = [], start, len(data) if end is None else end
    while position + 8 <= end:
        size, kind = struct.unpack(">I4s", data[position : position + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[position + 8 : position + 16])[0], 16
        boxes.append((kind.decode("latin-1"), position + header, position + size))
        position += size
    return boxes


def test_an_encoded_clip_is_an_h264_mp4_that_decodes_back():
    frames = _numbered_frames(16)
    data = encode_video(frames, fps=8)
    info = probe_video(data)
    assert (info.codec, info.pix_fmt, info.width, info.height, info.frames, info.fps) == ("h264", "yuv420p", 32, 32, 16, 8.0)
    assert "mp4" in info.container
    decoded = decode_video(data)
    assert decoded.shape == (16, 3, 32, 32) and str(decoded.dtype) == "torch.uint8"
    # Lossy but close: the stored frames come back within a few levels on average.
    error = np.abs(decoded.permute(0, 2, 3, 1).numpy().astype(int) - frames.astype(int)).mean()
    assert error < 4, error


def test_the_file_is_an_iso_mp4_with_an_avc1_track_read_without_ffmpeg():
    data = encode_video(_numbered_frames(4), fps=8)
    assert {"ftyp", "moov", "mdat"} <= {kind for kind, _, _ in _mp4_boxes(data)}
    ftyp_start, _ = _box(data, ["ftyp"])
    assert data[ftyp_start : ftyp_start + 4] == b"isom"
    # The sample description names the codec: avc1 is H.264. stsd's payload: version/flags, entry count, entries.
    stsd_start, stsd_end = _box(data, ["moov", "trak", "mdia", "minf", "stbl", "stsd"])
    assert [kind for kind, _, _ in _mp4_boxes(data, stsd_start + 8, stsd_end)] == ["avc1"]


def _box(data: bytes, path: list[str]) -> tuple[int, int]:
    start, end = 0, len(data)
    for kind in path:
        start, end = next((s, e) for k, s, e in _mp4_boxes(data, start, end) if k == kind)
    return start, end


def test_encoding_is_deterministic_and_refuses_odd_sides():
    frames = _numbered_frames(6)
    assert encode_video(frames, fps=8) == encode_video(frames.copy(), fps=8)
    with pytest.raises(ValueError, match="even"):
        encode_video(_numbered_frames(3, size=31), fps=8)


def test_uniform_sampling_takes_the_middle_of_equal_segments():
    assert frame_indices(16, 8, "uniform") == [1, 3, 5, 7, 9, 11, 13, 15]
    assert frame_indices(16, 4, "uniform") == [2, 6, 10, 14]
    assert frame_indices(10, 1, "uniform") == [5]
    assert frame_indices(3, 6, "uniform") == [0, 0, 1, 1, 2, 2]  # fewer frames than asked for: they repeat
    assert frame_indices(16, 8, "uniform", seed=1) == frame_indices(16, 8, "uniform", seed=2)


def test_segment_sampling_draws_one_frame_inside_each_segment_from_the_seed():
    for total, count in ((16, 8), (30, 4), (100, 7), (5, 5), (3, 6)):
        draws = {tuple(frame_indices(total, count, "segment", seed)) for seed in range(200)}
        for picks in draws:
            for i, pick in enumerate(picks):
                start, stop = i * total // count, (i + 1) * total // count
                assert (start <= pick < stop) if stop > start else pick == min(start, total - 1)
        if total >= 2 * count:
            assert len(draws) > 20  # it is random
    assert frame_indices(100, 8, "segment", seed=7) == frame_indices(100, 8, "segment", seed=7)
    with pytest.raises(ValueError, match="frame sampling"):
        frame_indices(10, 2, "random")


@pytest.mark.parametrize("gop", [10, 250])
def test_sampled_frames_equal_those_of_a_full_decode_with_and_without_seeking(gop):
    # 300 frames: picks far apart make the decoder seek (key frames every 10) or decode through (every 250).
    data = _encode_with_key_frames_every(_numbered_frames(300), gop)
    everything = decode_video(data)
    assert everything.shape[0] == 300
    for sampling in ("uniform", "segment"):
        for seed in range(3):
            picks = frame_indices(300, 8, sampling, seed)
            assert decode_video(data, 8, sampling, seed).equal(everything[picks])


def test_a_file_without_a_video_stream_is_one_clear_error():
    with pytest.raises(ValueError, match=r"^talk\.mp4: no video stream \(streams: audio\)$"):
        decode_video(audio_only_mp4(), 4, name="talk.mp4")
    with pytest.raises(ValueError, match="talk.mp4: no video stream"):
        probe_video(audio_only_mp4(), name="talk.mp4")


def test_bytes_that_are_no_video_are_a_value_error_naming_them():
    with pytest.raises(ValueError, match="^junk.mp4: not a video file FFmpeg reads"):
        decode_video(b"\x00\x01 this is not a video" * 10, 4, name="junk.mp4")
    good = encode_video(_numbered_frames(8), fps=8)
    with pytest.raises(ValueError, match="cut.mp4"):
        decode_video(good[: len(good) // 2], 4, name="cut.mp4")


def test_the_extension_names_the_demuxer_and_a_misnamed_file_is_still_read():
    data = encode_video(_numbered_frames(8), fps=8)
    expected = decode_video(data, 4)
    assert decode_video(data, 4, extension="mp4").equal(expected)
    assert decode_video(data, 4, extension="webm").equal(expected)  # MP4 bytes under a .webm name: FFmpeg probes
    with pytest.raises(ValueError, match="^x.webm: not a video file FFmpeg reads"):
        decode_video(b"junk" * 40, 4, name="x.webm", extension="webm")


def test_a_webm_without_a_frame_count_in_its_header_samples_the_same_frames():
    # WebM (VP9) records no frame count: the count comes from duration × rate, and the picks are the same.
    frames = _numbered_frames(40)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm") as container:
        stream = container.add_stream("libvpx-vp9", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.options = {"crf": "10", "b": "0", "threads": "1"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    data = buffer.getvalue()
    info = probe_video(data)
    assert (info.codec, info.frames, info.fps) == ("vp9", 0, 10.0) and "webm" in info.container
    everything = decode_video(data, extension="webm")
    assert everything.shape == (40, 3, 32, 32)
    for sampling in ("uniform", "segment"):
        assert decode_video(data, 5, sampling, seed=3, extension="webm").equal(everything[frame_indices(40, 5, sampling, 3)])
