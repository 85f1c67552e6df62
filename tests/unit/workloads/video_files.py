"""Video files the tests need beside the generator's clips."""

from __future__ import annotations

import io

import av
import numpy as np


def audio_only_mp4() -> bytes:
    """An MP4 holding one AAC audio stream and no video stream."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()
