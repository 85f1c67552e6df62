"""Where `model.init_from` (and any "give me a model" reference) points, resolved to an architecture and weights.

- `models:/NAME@ALIAS` or `models:/NAME/VERSION`: a version registered by vlp's register step (its `model.pt`).
- a vlp checkpoint URI (local path or s3://): `{"model": state_dict, "model_cfg": json, ...}`.
- a bare state dict file (an open_clip `.pt`/`.bin`/`.safetensors`): weights only; the architecture is the preset's.
- `{open_clip: CONFIG, checkpoint: FILE}`: open_clip's config by name, weights (optional) through open_clip's loader.
- `local-dir:DIR`: open_clip's own folder layout (`open_clip_config.json` + weights), as `vlp export` writes it, as
  every vlp checkpoint of an open_clip model carries it, and as open_clip saves for the Hugging Face hub.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vlp.platform.errors import SpecError
from vlp.platform.spec.model import OpenClipReference

PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode", "fill_color")
LOCAL_DIR_PREFIX = "local-dir:"  # open_clip's own prefix for a folder holding its config and weights


@dataclass(frozen=True)
class Weights:
    source: str
    """What the user named, for messages."""
    model_cfg: dict[str, Any] | None
    """The architecture the weights were trained with; None for a bare state dict."""
    state_dict: dict[str, torch.Tensor] | None
    """None: the architecture only (an open_clip config without a checkpoint)."""
    open_clip_file: str | None = None
    """A local open_clip weights file, loaded through open_clip's converter (it fixes old layouts and sizes)."""


def resolve_weights(reference: str | OpenClipReference | None, tracking_uri: str | None = None) -> Weights | None:
    if reference is None:
        return None
    if isinstance(reference, OpenClipReference):
        return open_clip_weights(reference.open_clip, reference.checkpoint, reference.pretrained)
    if reference.startswith("models:/"):
        return registered_weights(reference, tracking_uri)
    if reference.startswith(LOCAL_DIR_PREFIX):
        return open_clip_folder_weights(reference[len(LOCAL_DIR_PREFIX):])
    return checkpoint_weights(reference)


def open_clip_folder_weights(folder: str) -> Weights:
    """Architecture from the folder's `open_clip_config.json`, weights from the file open_clip itself would pick."""
    from open_clip.constants import HF_CONFIG_NAME
    from open_clip.factory import _find_checkpoint_in_dir

    config_path = Path(folder) / HF_CONFIG_NAME
    if not config_path.is_file():
        raise SpecError(f"model.init_from: {LOCAL_DIR_PREFIX}{folder}: no {HF_CONFIG_NAME} there (is it an open_clip folder?)")
    try:
        config = json.loads(config_path.read_text())
        model_cfg = dict(config["model_cfg"])
    except (ValueError, KeyError, TypeError):
        raise SpecError(f"model.init_from: {config_path}: not an open_clip config (expected JSON with `model_cfg`)") from None
    if config.get("preprocess_cfg"):  # the normalisation and resizing the weights were trained with
        model_cfg["preprocess_cfg"] = config["preprocess_cfg"]
    return Weights(f"{LOCAL_DIR_PREFIX}{folder}", model_cfg, None, _find_checkpoint_in_dir(Path(folder)))


def open_clip_weights(name: str, checkpoint: str | None = None, pretrained: str | None = None) -> Weights:
    import open_clip

    model_cfg = open_clip.get_model_config(name)
    if model_cfg is None:
        raise SpecError(f"model.init_from.open_clip: unknown open_clip config {name!r} (see open_clip.list_models())")
    if pretrained is not None:
        tags = open_clip.list_pretrained_tags_by_model(name)
        if pretrained not in tags:
            raise SpecError(f"model.init_from.pretrained: {name} has no pretrained tag {pretrained!r} (known: {', '.join(tags) or 'none'})")
        released = open_clip.get_pretrained_cfg(name, pretrained)
        model_cfg = {**model_cfg, "preprocess_cfg": {key: released[key] for key in PREPROCESS_KEYS if key in released}}
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise SpecError(f"model.init_from.checkpoint: {checkpoint}: no such file")
    return Weights(f"open_clip:{name}", model_cfg, None, checkpoint)


def checkpoint_weights(uri: str) -> Weights:
    from vlp.platform.storage import open_storage
    from vlp.workloads.train.checkpoint import load_checkpoint

    if uri.endswith(".safetensors"):
        from safetensors.torch import load_file

        return Weights(uri, None, load_file(uri))
    storage = open_storage(uri)
    if not storage.exists(uri):
        raise SpecError(f"model.init_from: {uri}: no such checkpoint")
    state = load_checkpoint(uri)  # checked against its manifest when it is one of a run's checkpoints
    if isinstance(state, dict) and "model" in state and "model_cfg" in state:
        return Weights(uri, json.loads(state["model_cfg"]), state["model"])
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise SpecError(f"model.init_from: {uri} is neither a vlp checkpoint nor a state dict")
    return Weights(uri, None, {key.removeprefix("module."): value for key, value in state.items()})


def registered_weights(reference: str, tracking_uri: str | None = None) -> Weights:
    """Download a registered version's files and read the checkpoint the register step put beside the pyfunc."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from vlp.platform.state import default_tracking_uri

    uri = tracking_uri or default_tracking_uri()
    name, _, version = reference.removeprefix("models:/").partition("/")
    name, _, alias = name.partition("@")
    # An explicit client: mlflow's global registry URI need not be the tracking store vlp uses.
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    with tempfile.TemporaryDirectory() as scratch:
        try:
            version = client.get_model_version_by_alias(name, alias).version if alias else version
            source = client.get_model_version_download_uri(name, version)
            local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=scratch, tracking_uri=uri)
        except MlflowException as err:
            raise SpecError(f"model.init_from: {reference}: {err.message.splitlines()[0]}") from None
        files = sorted(Path(local).rglob("*.pt"))
        if not files:
            raise SpecError(f"model.init_from: {reference} holds no .pt checkpoint (was it registered by vlp?)")
        weights = checkpoint_weights(str(files[0]))
    return Weights(reference, weights.model_cfg, weights.state_dict)


def load_weights(model: torch.nn.Module, weights: Weights, arch: str) -> None:
    """Load into the model; a clip's weights go into the `backbone` (a CLIP) of the architectures built on one
    (PACL, fusion, grounding, video). Mismatches are one-line errors."""
    target = model
    keys = set(weights.state_dict or {})
    if hasattr(model, "backbone") and not any(key.startswith("backbone.") for key in keys):
        target = model.backbone
    if weights.open_clip_file is not None:
        from open_clip.factory import load_checkpoint

        try:
            load_checkpoint(target, weights.open_clip_file, strict=True)
        except RuntimeError as err:
            raise SpecError(f"model.init_from: {weights.open_clip_file} does not fit open_clip config {weights.source}: {str(err).splitlines()[0]}") from None
        return
    if weights.state_dict is None:
        return
    state = dict(weights.state_dict)
    own = target.state_dict()
    # Training SigLIP from InfoNCE weights: the new bias keeps its initial value (as open_clip does).
    if "logit_bias" in own and "logit_bias" not in state:
        state["logit_bias"] = own["logit_bias"]
    missing, unexpected = target.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SpecError(
            f"model.init_from: {weights.source} does not fit model.arch {arch} with these options: "
            f"missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}"
        )
