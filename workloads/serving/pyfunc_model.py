"""An MLflow pyfunc that embeds images and texts with a trained vlp model, and how a registered version is logged.

Input: a DataFrame with a `text` column (strings) and/or an `image` column (encoded PNG/JPEG bytes);
output: a DataFrame with one `embedding` (list of floats, L2-normalised) per row.

A registered version carries `model.pt` (weights and architecture, what vlp loads) and, when open_clip can build
the model, an `open_clip/` folder that `open_clip.create_model_and_transforms("local-dir:…")` loads as is.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

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


def signature():
    """Inputs: `text` and/or `image` (encoded PNG/JPEG bytes), each optional per model call; output: `embedding`."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    inputs = Schema([ColSpec("string", "text", required=False), ColSpec("binary", "image", required=False)])
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec(Array("float"), "embedding")]))


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
            signature=signature(), input_example=pd.DataFrame({"text": [INPUT_EXAMPLE_TEXT]}),
        )


class ClipEmbedder(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from vlp.workloads.evaluation.encode import load_trained_model

        self.built = load_trained_model(context.artifacts["checkpoint"])
        self.built.model.eval()

    def predict(self, context, model_input, params=None):
        import io

        import pandas as pd
        import torch
        import torch.nn.functional as F
        from PIL import Image

        from vlp.workloads.evaluation.transform import EvalImageTransform

        transform = EvalImageTransform(self.built.preprocess)
        embeddings = []
        with torch.no_grad():
            for _, row in model_input.iterrows():
                image = row.get("image") if "image" in model_input.columns else None
                if image is not None and not isinstance(image, float):
                    pixels = transform(bytes(image))
                    vector = self.built.model.encode_image(pixels[None])
                else:
                    vector = self.built.model.encode_text(self.built.tokenizer([str(row["text"])]))
                embeddings.append(F.normalize(vector, dim=-1)[0].tolist())
        return pd.DataFrame({"embedding": embeddings})
