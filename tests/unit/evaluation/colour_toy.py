"""A toy dataset and a toy CLIP whose right answers are known by construction.

Images are black 32×32 squares with one 16×16 patch-aligned coloured square; the class is the colour and
the domain is its brightness. `ColourClip` embeds an image as its mean colour and a text as the colour
words it contains, so it classifies, retrieves and (with patch maps) segments every image correctly.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import torch

from vlp.workloads.data.shapes_render import encode_png
from vlp.workloads.models.factory import BuiltModel

COLOURS = ("red", "green", "blue")
DOMAINS = ("bright", "dark")
SIZE = 32


def toy_sample(index: int) -> dict:
    colour, domain = COLOURS[index % 3], DOMAINS[(index // 3) % 2]
    x0, y0 = 8 * (index % 3), 8 * ((index // 2) % 3)
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[y0 : y0 + 16, x0 : x0 + 16, COLOURS.index(colour)] = 255 if domain == "bright" else 128
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[y0 : y0 + 16, x0 : x0 + 16] = 1
    return {"key": f"{index:06d}", "png": encode_png(image), "mask": encode_png(mask), "caption": f"a {colour} square", "colour": colour, "domain": domain}


def toy_questions(index: int) -> list[dict]:
    """What colour the square is, and whether it is a given colour (its own for even images, the next otherwise)."""
    colour = COLOURS[index % 3]
    asked = colour if index % 2 == 0 else COLOURS[(index + 1) % 3]
    return [
        {"question": "what colour is the square?", "answer": colour, "kind": "colour"},
        {"question": f"is the square {asked}?", "answer": "yes" if asked == colour else "no", "kind": "exists"},
    ]


ANSWERS = tuple(sorted((*COLOURS, "yes", "no")))


def write_shards(root: Path, count: int, per_shard: int = 8, manifest: bool = True, questions: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for shard in range(0, count, per_shard):
        with tarfile.open(root / f"shard-{shard // per_shard:06d}.tar", "w") as tar:
            for index in range(shard, min(count, shard + per_shard)):
                sample = toy_sample(index)
                meta = {"colour": sample["colour"], "style": sample["domain"], "objects": [{"colour": sample["colour"]}]}
                if questions:
                    meta["questions"] = toy_questions(index)
                for suffix, data in (("png", sample["png"]), ("mask.png", sample["mask"]), ("txt", sample["caption"].encode()), ("json", json.dumps(meta).encode())):
                    info = tarfile.TarInfo(f"{sample['key']}.{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    if manifest:
        answers = {"answers": list(ANSWERS)} if questions else {}
        (root / "manifest.json").write_text(json.dumps({"classes": {"colour": list(COLOURS)}, "domains": list(DOMAINS), **answers}))
    return root


def write_domainbed(root: Path, count: int) -> Path:
    for index in range(count):
        sample = toy_sample(index)
        path = root / sample["domain"] / sample["colour"] / f"{sample['key']}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(sample["png"])
    return root


def write_image_folder(root: Path, count: int) -> Path:
    for index in range(count):
        sample = toy_sample(index)
        path = root / sample["colour"] / f"{sample['key']}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(sample["png"])
    return root


def write_table(root: Path, count: int, separator: str = ",") -> Path:
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    lines = [separator.join(["filepath", "title", "colour"])]
    for index in range(count):
        sample = toy_sample(index)
        (images / f"{sample['key']}.png").write_bytes(sample["png"])
        lines.append(separator.join([f"images/{sample['key']}.png", sample["caption"], sample["colour"]]))
    table = root / ("pairs.tsv" if separator == "\t" else "pairs.csv")
    table.write_text("\n".join(lines) + "\n")
    return table


class ColourClip(torch.nn.Module):
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3))

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([[1.0 if colour in text else 0.0 for colour in COLOURS] for text in texts])


class PatchColourClip(ColourClip):
    """Also has patch–text similarity maps, like PACL; its "patches" are single pixels, so the maps need no upsampling."""

    def patch_text_similarity(self, images: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bchw,kc->bkhw", images, text_features)


def toy_model(patch_maps: bool = False) -> BuiltModel:
    model = PatchColourClip() if patch_maps else ColourClip()
    from vlp.workloads.data.image_transforms import ImagePreprocess

    preprocess = ImagePreprocess(size=(SIZE, SIZE), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return BuiltModel(model=model, model_cfg={}, tokenizer=lambda texts: list(texts), preprocess=preprocess)
