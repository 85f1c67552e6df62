"""Figures of clips: each clip's frames in a row, titled with its true and predicted classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vlp.workloads.evaluation.plots import _pyplot, _save


def clip_frames(clips: list[np.ndarray], captions: list[str], title: str, path: Path) -> Path:
    """`clips[i]` is T×H×W×3 floats in [0, 1]; `captions[i]` is written above its row (true and predicted classes)."""
    plt = _pyplot()
    frames = max(clip.shape[0] for clip in clips)
    figure, grid = plt.subplots(len(clips), frames, figsize=(1.1 * frames + 0.4, 1.35 * len(clips) + 0.5), squeeze=False)
    for row, (clip, caption) in enumerate(zip(clips, captions)):
        for column in range(frames):
            axes = grid[row, column]
            axes.axis("off")
            if column < clip.shape[0]:
                axes.imshow(clip[column], interpolation="nearest")
        grid[row, 0].set_title(caption, fontsize=7, loc="left", x=0.0)
    for column in range(frames):
        grid[-1, column].text(0.5, -0.12, f"t={column}", fontsize=6, ha="center", va="top", transform=grid[-1, column].transAxes)
    figure.suptitle(title, fontsize=9)
    return _save(figure, path)
