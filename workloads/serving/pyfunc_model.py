"""An MLflow pyfunc that serves a trained vlp model, and how a registered version is logged.

Input: a DataFrame with a `text` column (strings), an `image` column (encoded PNG/JPEG bytes) and, for models that
read clips, a `video` column (encoded MP4 bytes); each optional per row. Output, per row:
- `embedding`: the L2-normalised embedding of the row's video, else its image, else its text;
- `match` (fusion encoders: fusion, flava): for rows with an image and a text, the image-text matching probability
  from the fused encoder's ITM head;
- `box` (grounding: transvg): for rows with an image and a text (a referring expression), the box (x0, y0, x1, y1)
  in the image's pixels.

A registered version carries `model.pt` (weights and architecture, what vlp loads) and, when open_clip can build
the model, an `open_clip/` folder that `open_clip.create_model_and_transforms("local-dir:…")` loads as is.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import mlflow.pyfunc

OPEN_CLIP_ARTIFACT = "open_clip"
# What the pyfunc imports when it loads and predicts, pinned to the versions it was logged with; vlp's own
# code travels with the model (`code_paths`), so nothing has to serve a `vlp` distribution.
RUNTIME_DISTRIBUTIONS = ("torch", "torchvision", "open_clip_torch", "numpy", "pandas", "pillow", "pydantic", "pyyaml", "safetensors", "mlflow")
INPUT_EXAMPLE_TEXT = "a photo of a dog"


def pinned_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pinned = []
    for name in RUNTIME_DISTRIBUTIONS:
        try:
            pinned.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pinned


# What each architecture answers beyond embeddings (see the module docstring).
PAIR_OUTPUTS = {"fusion": "match", "flava": "match", "transvg": "box"}
READS_VIDEO = ("video",)


def signature(arch: str = "clip"):
    """Inputs: `text`, `image` (encoded PNG/JPEG bytes) and for video models `video` (MP4 bytes), each optional per
    call; outputs: `embedding`, plus `match` or `box` for the architectures that answer image-text pairs."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    inputs = [ColSpec("string", "text", required=False), ColSpec("binary", "image", required=False)]
    if arch in READS_VIDEO:
        inputs.append(ColSpec("binary", "video", required=False))
    outputs = [ColSpec(Array("float"), "embedding", required=False)]
    if PAIR_OUTPUTS.get(arch) == "match":
        outputs.append(ColSpec("double", "match", required=False))
    elif PAIR_OUTPUTS.get(arch) == "box":
        outputs.append(ColSpec(Array("float"), "box", required=False))
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def _vlp_code(scratch: Path) -> str:
    """A `vlp` folder holding the packages the pyfunc imports (vlp.platform and vlp.workloads), without caches."""
    import shutil

    import vlp.platform
    import vlp.workloads

    root = scratch / "code" / "vlp"
    for package in (vlp.platform, vlp.workloads):
        shutil.copytree(list(package.__path__)[0], root / package.__name__.rsplit(".", 1)[1], ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return str(root)


def log_embedder(state: dict[str, Any], registered_model_name: str):
    """Log the pyfunc with its files into the active MLflow run and register it; returns mlflow's ModelInfo."""
    import io

    import pandas as pd
    import torch

    from vlp.workloads.models.open_clip_export import open_clip_files_if_buildable

    with tempfile.TemporaryDirectory() as scratch:
        # The served model needs weights and architecture only, not the optimizer state.
        weights = Path(scratch) / "model.pt"
        buffer = io.BytesIO()
        torch.save({"model": state["model"], "model_cfg": state["model_cfg"], "step": state["step"]}, buffer)
        weights.write_bytes(buffer.getvalue())
        artifacts = {"checkpoint": str(weights)}
        open_clip_files = open_clip_files_if_buildable(json.loads(state["model_cfg"]), state["model"])
        if open_clip_files is not None:
            folder = Path(scratch) / OPEN_CLIP_ARTIFACT
            folder.mkdir()
            for name, content in open_clip_files.items():
                (folder / name).write_bytes(content)
            artifacts[OPEN_CLIP_ARTIFACT] = str(folder)
        return mlflow.pyfunc.log_model(
            name="model", python_model=ClipEmbedder(), artifacts=artifacts, code_paths=[_vlp_code(Path(scratch))],
            registered_model_name=registered_model_name, pip_requirements=pinned_requirements(),
            signature=signature(json.loads(state["model_cfg"]).get("vlp", {}).get("arch", "clip")),
            input_example=pd.DataFrame({"text": [INPUT_EXAMPLE_TEXT]}),
        )


class ClipEmbedder(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from vlp.workloads.evaluation.encode import load_trained_model

        self.built = load_trained_model(context.artifacts["checkpoint"])
        self.built.model.eval()

    def predict(self, context, model_input, params=None):
        import pandas as pd
        import torch

        rows = [{column: _present(row.get(column)) for column in ("text", "image", "video")} for _, row in model_input.iterrows()]
        answers = [dict() for _ in rows]
        with torch.no_grad():
            for row, answer in zip(rows, answers):
                answer["embedding"] = self._embed(row)
            pair_output = PAIR_OUTPUTS.get(self.built.arch)
            pairs = [index for index, row in enumerate(rows) if row["image"] is not None and row["text"] is not None]
            if pair_output == "box" and pairs:
                from vlp.workloads.evaluation.grounding import predict_boxes_for

                boxes = predict_boxes_for(self.built, [rows[index]["image"] for index in pairs], [rows[index]["text"] for index in pairs])
                for index, box in zip(pairs, boxes):
                    answers[index]["box"] = box
            elif pair_output == "match":
                for index in pairs:
                    images = self._pixels(rows[index]["image"])[None]
                    logit = self.built.model.itm_logits(images, self.built.tokenizer([rows[index]["text"]]))
                    answers[index]["match"] = float(torch.sigmoid(logit.float())[0])
        columns = ["embedding", *([pair_output] if pair_output else [])]
        return pd.DataFrame({column: [answer.get(column) for answer in answers] for column in columns})

    def _pixels(self, image: bytes):
        from vlp.workloads.evaluation.transform import EvalImageTransform

        return EvalImageTransform(self.built.preprocess)(image)

    def _embed(self, row: dict) -> list[float]:
        import torch.nn.functional as F

        model = self.built.model
        if row["video"] is not None:
            from vlp.workloads.evaluation.encode import image_transform
            from vlp.workloads.evaluation.video_suite import clip_encoder, default_clip_frames

            clip = default_clip_frames(self.built, None)(ServedClip("video", row["video"]))
            vector = clip_encoder(model)(image_transform(self.built).normalise(clip)[None])
        elif row["image"] is not None:
            vector = model.encode_image(self._pixels(row["image"])[None])
        else:
            vector = model.encode_text(self.built.tokenizer([row["text"] or ""]))
        return F.normalize(vector.float(), dim=-1)[0].tolist()


class ServedClip(NamedTuple):
    """A clip as the video decoding of evaluation reads it."""

    key: str
    video: bytes


def _present(value):
    """A cell's value, or None where the row leaves it empty (pandas fills missing cells with NaN)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    return bytes(value) if isinstance(value, (bytes, bytearray, memoryview)) else str(value)
