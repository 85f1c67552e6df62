"""Evaluation figures as PNG files (matplotlib, Agg backend: no display needed), one function per figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(figure)
    return path


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, classnames: list[str], title: str, path: Path) -> Path:
    """Rows: true class, columns: predicted class, each row normalised to sum 1."""
    plt = _pyplot()
    n = len(classnames)
    counts = torch.bincount(labels * n + predictions, minlength=n * n).reshape(n, n).double()
    rates = (counts / counts.sum(dim=1, keepdim=True).clamp_min(1)).numpy()
    size = max(4.0, 0.45 * n + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    image = axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(n), classnames, rotation=60, ha="right")
    axes.set_yticks(range(n), classnames)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if n <= 20:
        for row in range(n):
            for column in range(n):
                axes.text(column, row, f"{rates[row, column]:.2f}", ha="center", va="center", fontsize=7, color="white" if rates[row, column] > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046)
    axes.set_title(title)
    return _save(figure, path)


def recall_at_k(metrics: dict[str, float], title: str, path: Path) -> Path:
    """Recall@k of both directions from CLIP_benchmark-named retrieval metrics."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5, 3.5))
    for direction, label in (("text_retrieval", "image → text"), ("image_retrieval", "text → image")):
        points = sorted((int(key.rsplit("@", 1)[1]), value) for key, value in metrics.items() if key.startswith(f"{direction}_recall@"))
        axes.plot([k for k, _ in points], [v for _, v in points], marker="o", label=label)
    axes.set_xscale("log")
    axes.set_xticks([1, 5, 10], ["1", "5", "10"])
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("k")
    axes.set_ylabel("recall@k")
    axes.grid(alpha=0.3)
    axes.legend()
    axes.set_title(title)
    return _save(figure, path)


def grouped_bars(values: dict[str, dict[str, float]], title: str, ylabel: str, path: Path) -> Path:
    """Bars per group (x axis: the inner keys, e.g. domains), one colour per series (outer keys, e.g. methods)."""
    plt = _pyplot()
    groups = sorted({group for series in values.values() for group in series})
    series_names = list(values)
    width = 0.8 / max(1, len(series_names))
    figure, axes = plt.subplots(figsize=(max(4.5, 1.2 * len(groups) + 2), 3.5))
    for index, name in enumerate(series_names):
        heights = [values[name].get(group, np.nan) for group in groups]
        positions = np.arange(len(groups)) + (index - (len(series_names) - 1) / 2) * width
        bars = axes.bar(positions, heights, width, label=name)
        axes.bar_label(bars, fmt="%.2f", fontsize=7)
    axes.set_xticks(range(len(groups)), groups)
    axes.set_ylim(0, 1.08)
    axes.set_ylabel(ylabel)
    if len(series_names) > 1:
        axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.set_title(title)
    return _save(figure, path)


def patch_heatmaps(samples: list[dict], unnormalise, title: str, path: Path) -> Path:
    """Each sample's image, its true class's patch–text similarity over it, and the predicted segmentation."""
    plt = _pyplot()
    figure, grid = plt.subplots(3, len(samples), figsize=(1.9 * len(samples), 6), squeeze=False)
    for column, sample in enumerate(samples):
        image = unnormalise(sample["pixels"])
        size = image.shape[:2]
        heat = torch.nn.functional.interpolate(sample["map"][None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0]
        grid[0, column].imshow(image)
        grid[0, column].set_title(sample["label"], fontsize=8)
        grid[1, column].imshow(image)
        grid[1, column].imshow(heat.numpy(), cmap="jet", alpha=0.55)
        grid[2, column].imshow(sample["predicted"].numpy(), cmap="tab20", vmin=0, vmax=19, interpolation="nearest")
        for row in range(3):
            grid[row, column].axis("off")
    grid[1, 0].set_title("similarity to the true class", fontsize=8, loc="left")
    grid[2, 0].set_title("predicted (0 = background)", fontsize=8, loc="left")
    figure.suptitle(title)
    return _save(figure, path)


def embedding_projection(image_features: torch.Tensor, text_features: torch.Tensor, title: str, path: Path, max_points: int = 1000) -> Path:
    """Both modalities projected on the first two principal components of their union (the gap shows as two clouds)."""
    plt = _pyplot()
    generator = torch.Generator().manual_seed(0)
    images = image_features[torch.randperm(len(image_features), generator=generator)[:max_points]].double()
    texts = text_features[torch.randperm(len(text_features), generator=generator)[:max_points]].double()
    joint = torch.cat([images, texts])
    centred = joint - joint.mean(dim=0)
    _, _, components = torch.linalg.svd(centred, full_matrices=False)
    projected = (centred @ components[:2].T).numpy()
    figure, axes = plt.subplots(figsize=(5, 4.5))
    for start, end, name, colour in ((0, len(images), "images", "C0"), (len(images), len(joint), "texts", "C1")):
        axes.scatter(projected[start:end, 0], projected[start:end, 1], s=6, alpha=0.5, color=colour, label=name)
        centre = projected[start:end].mean(axis=0)
        axes.scatter([centre[0]], [centre[1]], s=140, marker="X", color=colour, edgecolors="black", label=f"{name} centroid")
    axes.set_xlabel("PC 1")
    axes.set_ylabel("PC 2")
    axes.legend()
    axes.set_title(title)
    return _save(figure, path)


def grounding_boxes(samples: list[dict], title: str, path: Path) -> Path:
    """Each sample's stored image (`image` bytes) with its predicted box (red) and true box (green), both pixel
    (x0, y0, x1, y1), titled with the referring expression."""
    import io

    from matplotlib.patches import Rectangle
    from PIL import Image

    plt = _pyplot()
    columns = min(4, len(samples))
    rows = -(-len(samples) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.9 * rows), squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, sample in zip(grid.flat, samples):
        axes.imshow(np.asarray(Image.open(io.BytesIO(sample["image"])).convert("RGB")))
        for box, colour in ((sample["true"], "lime"), (sample["predicted"], "red")):
            x0, y0, x1, y1 = (float(value) for value in box)
            # Box edges are pixel edges; imshow centres pixel i on i, so edges sit at -0.5.
            axes.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=1.5))
        axes.set_title(sample["expression"], fontsize=7, wrap=True)
    figure.suptitle(title, fontsize=9)
    return _save(figure, path)
