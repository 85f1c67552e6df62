from __future__ import annotations

import torch
from open_clip.tokenizer import SimpleTokenizer

from vlp.workloads.data.caption_tokens import CaptionTokenizer

CAPTIONS = [
    "a small red circle and a large blue square",
    "A photo of a   LARGE green star.",
    "a sketch of a hexagon, a ring & a cross",
    "naïve café drawing of a triangle",
    "two shapes: a diamond and a crescent!! (cartoon) it's 3x bigger",
    "",
    " ".join(["long"] * 60),
]


def test_same_ids_as_open_clip():
    reference = SimpleTokenizer(context_length=32)
    fast = CaptionTokenizer(SimpleTokenizer(context_length=32))
    assert torch.equal(fast(CAPTIONS), reference(CAPTIONS))
    assert torch.equal(fast(CAPTIONS), reference(CAPTIONS))  # second call served from the word cache
