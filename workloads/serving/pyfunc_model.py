"""An MLflow pyfunc that embeds images and texts with a trained vlp model.

Input: a DataFrame with a `text` column (strings) and/or an `image` column (encoded PNG/JPEG bytes);
output: a DataFrame with one `embedding` (list of floats, L2-normalised) per row.
"""

from __future__ import annotations

import mlflow.pyfunc


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

        from vlp.workloads.data.loader import ImageTextDecoder

        decode = ImageTextDecoder(self.built.image_size, self.built.image_mean, self.built.image_std)
        embeddings = []
        with torch.no_grad():
            for _, row in model_input.iterrows():
                image = row.get("image") if "image" in model_input.columns else None
                if image is not None and not (isinstance(image, float)):
                    pixels, _ = decode({"png": bytes(image)})
                    vector = self.built.model.encode_image(pixels[None])
                else:
                    vector = self.built.model.encode_text(self.built.tokenizer([str(row["text"])]))
                embeddings.append(F.normalize(vector, dim=-1)[0].tolist())
        return pd.DataFrame({"embedding": embeddings})
