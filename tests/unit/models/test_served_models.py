"""The registered pyfunc answers what each architecture is for: embeddings for all, a match probability from a fusion
encoder's ITM head, a pixel box from a grounding model, clip embeddings from a video model."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from vlp.platform.spec.model import ModelSection
from vlp.workloads.models.factory import build_model
from vlp.workloads.serving.pyfunc_model import ClipEmbedder, signature


def served(section: ModelSection) -> ClipEmbedder:
    torch.manual_seed(0)
    model = ClipEmbedder()
    model.built = build_model(section)
    model.built.model.eval()
    return model


def png(height: int = 40, width: int = 56) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def unit_norm(vectors) -> bool:
    return all(abs(np.linalg.norm(vector) - 1) < 1e-4 for vector in vectors)


def test_a_fusion_encoder_answers_image_text_matching_beside_embeddings():
    model = served(ModelSection(arch="fusion", preset="shapes-vit-micro"))
    answer = model.predict(None, pd.DataFrame({"text": ["a red circle", "a blue square", None], "image": [png(), None, png()]}))
    assert list(answer.columns) == ["embedding", "match"]
    assert unit_norm(answer["embedding"])
    assert 0 <= answer["match"][0] <= 1 and pd.isna(answer["match"][1]) and pd.isna(answer["match"][2])  # no pair: no answer
    # The probability is the ITM head's for that pair.
    images = model._pixels(png())[None]
    with torch.no_grad():
        expected = torch.sigmoid(model.built.model.itm_logits(images, model.built.tokenizer(["a red circle"])).float())[0]
    assert answer["match"][0] == pytest.approx(float(expected), abs=1e-6)


def test_a_grounding_model_answers_a_box_in_the_images_pixels():
    model = served(ModelSection(arch="transvg", preset="shapes-vit-micro"))
    answer = model.predict(None, pd.DataFrame({"text": ["the red circle", "the blue square"], "image": [png(40, 56), None]}))
    assert list(answer.columns) == ["embedding", "box"]
    x0, y0, x1, y1 = answer["box"][0]
    assert 0 <= x0 <= x1 <= 56 and 0 <= y0 <= y1 <= 40
    assert answer["box"][1] is None and unit_norm(answer["embedding"])


def test_a_video_model_embeds_clips_and_texts_in_one_space():
    from vlp.workloads.data.video_codec import encode_video

    model = served(ModelSection(arch="video", preset="shapes-vit-micro"))
    frames = np.random.default_rng(1).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    answer = model.predict(None, pd.DataFrame({"video": [encode_video(frames, fps=8), None], "text": [None, "a circle moving left"]}))
    assert list(answer.columns) == ["embedding"] and unit_norm(answer["embedding"])
    assert len(answer["embedding"][0]) == len(answer["embedding"][1])


@pytest.mark.parametrize("arch, inputs, outputs", [
    ("clip", ["text", "image"], ["embedding"]),
    ("flava", ["text", "image"], ["embedding", "match"]),
    ("transvg", ["text", "image"], ["embedding", "box"]),
    ("video", ["text", "image", "video"], ["embedding"]),
])
def test_the_signature_says_what_each_architecture_reads_and_answers(arch, inputs, outputs):
    described = signature(arch)
    assert described.inputs.input_names() == inputs and described.outputs.input_names() == outputs
