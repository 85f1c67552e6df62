"""A trained vlp model in open_clip's own layout: `open_clip_config.json` (`{"model_cfg", "preprocess_cfg"}`) beside
`open_clip_model.safetensors` (a plain state dict), the folder `open_clip.create_model_and_transforms("local-dir:DIR")`
loads and the layout open_clip pushes to the Hugging Face hub.

Only what open_clip can build is exported: `arch: clip` without vlp-only options, whose `model_cfg` has no `vlp`
entry and whose state dict keys are open_clip's (see `vlp.workloads.models.clip`). Every other architecture
(msclip, multiway, pacl, vlp's CoCa, GGeM or mean pooling on a ResNet tower, MS-CLIP's stem or branch) gets a one-line
error naming it; the reverse direction, an open_clip weights file as `model.init_from`, is
`vlp.workloads.models.weights`.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlp.platform.errors import SpecError, VlpUserError
from vlp.platform.storage import join, open_storage

REGISTRY_PREFIX = "models:/"


class NotOpenClipError(VlpUserError):
    """The model is a vlp-only architecture that open_clip cannot build."""


@dataclass(frozen=True)
class TrainedModel:
    model_cfg: dict[str, Any]
    state_dict: dict[str, Any]


def vlp_only_features(model_cfg: dict[str, Any]) -> str | None:
    """What open_clip lacks to build this model ("arch msclip", "arch clip, pooling ggem"), None if it has it all."""
    options = model_cfg.get("vlp")
    if not options:
        return None
    features = [f"arch {options.get('arch', 'clip')}"]
    if options.get("pooling", "cls") != "cls":
        features.append(f"pooling {options['pooling']}")
    features += [name.replace("_", " ") for name in ("early_specialization", "aux_adapter") if options.get(name)]
    return ", ".join(features)


def open_clip_files(model_cfg: dict[str, Any], state_dict: dict[str, Any], source: str = "model") -> dict[str, bytes]:
    """File name -> bytes of the open_clip layout; NotOpenClipError (naming the arch) for a vlp-only model."""
    from open_clip.constants import HF_CONFIG_NAME, HF_SAFE_WEIGHTS_NAME
    from safetensors.torch import save

    from vlp.workloads.data.image_transforms import ImagePreprocess

    features = vlp_only_features(model_cfg)
    if features is not None:
        raise NotOpenClipError(f"{source}: a vlp-only model ({features}) that open_clip cannot build; only model.arch clip without vlp-only options exports")
    config = {
        "model_cfg": {key: value for key, value in model_cfg.items() if key not in ("vlp", "preprocess_cfg")},
        # open_clip's defaults overlaid with the model's own `preprocess_cfg`, the size its image tower's.
        "preprocess_cfg": ImagePreprocess.from_model_cfg(model_cfg).open_clip_cfg(),
    }
    tensors = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
    return {**hf_tokenizer_files(model_cfg), HF_SAFE_WEIGHTS_NAME: save(tensors), HF_CONFIG_NAME: json.dumps(config, indent=2).encode()}


def hf_tokenizer_files(model_cfg: dict[str, Any]) -> dict[str, bytes]:
    """The files of the model's HF tokenizer, if it has one: open_clip reads it from the exported folder itself."""
    if not model_cfg.get("text_cfg", {}).get("hf_tokenizer_name"):
        return {}
    from vlp.workloads.data.tokenizers import open_clip_tokenizer

    with tempfile.TemporaryDirectory() as folder:
        open_clip_tokenizer(model_cfg).tokenizer.save_pretrained(folder)
        return {path.name: path.read_bytes() for path in Path(folder).iterdir() if path.is_file()}


def open_clip_files_if_buildable(model_cfg: dict[str, Any], state_dict: dict[str, Any]) -> dict[str, bytes] | None:
    """The open_clip layout, or None for a vlp-only model: what checkpoints and registered versions carry."""
    return None if vlp_only_features(model_cfg) is not None else open_clip_files(model_cfg, state_dict)


def export_open_clip(reference: str, destination: str, tracking_uri: str | None = None, storage_root: str | None = None) -> list[str]:
    """Write the open_clip layout of `reference` (`models:/NAME@ALIAS`, `models:/NAME/VERSION`, a run id, a checkpoint
    file or a checkpoints/run folder, local or s3://) into the folder `destination`; returns the URIs written.
    `storage_root` is where a run's objects live when its experiment file did not say (default: the local one).
    Every check comes first, so a refused export writes nothing."""
    from open_clip.constants import HF_CONFIG_NAME

    if not destination.startswith("s3://") and Path(destination).is_file():
        raise VlpUserError(f"DIR {destination}: is a file; name a folder to write the open_clip files into")
    trained = trained_model(reference, tracking_uri, storage_root)
    files = open_clip_files(trained.model_cfg, trained.state_dict, reference)
    storage = open_storage(destination)
    # The config last: a folder whose weights are still being written has no config, so open_clip refuses it.
    names = sorted(files, key=lambda name: name == HF_CONFIG_NAME)
    for name in names:
        storage.write_bytes(join(destination, name), files[name])
    return [join(destination, name) for name in names]


def trained_model(reference: str, tracking_uri: str | None = None, storage_root: str | None = None) -> TrainedModel:
    """Architecture and weights of a registered version, a run's latest sound checkpoint, or a checkpoint."""
    from vlp.platform.tracking.resume import RUN_ID
    from vlp.workloads.models.weights import registered_weights
    from vlp.workloads.train.checkpoint import LATEST

    if reference.startswith(REGISTRY_PREFIX):
        try:
            weights = registered_weights(reference, tracking_uri)
        except SpecError as err:
            raise VlpUserError(str(err).replace("model.init_from: ", "")) from None
        if weights.model_cfg is None:
            raise VlpUserError(f"{reference}: its model.pt is a bare state dict without an architecture (was it registered by vlp?)")
        return TrainedModel(weights.model_cfg, weights.state_dict)
    if RUN_ID.match(reference) and not Path(reference).exists():
        checkpoints = run_checkpoints(reference, tracking_uri, storage_root)
        if not open_storage(checkpoints).exists(join(checkpoints, LATEST)):
            raise VlpUserError(f"run {reference}: no checkpoints at {checkpoints} (if the run wrote to another storage root, name that root)")
        return _from_state(*_latest_state(checkpoints))
    return _from_state(*_checkpoint_state(reference))


def run_checkpoints(run_id: str, tracking_uri: str | None = None, storage_root: str | None = None) -> str:
    """A run's checkpoints folder: in the storage root its experiment file named, else `storage_root` or the local one."""
    from mlflow.exceptions import MlflowException

    from vlp.platform.layout import RunLayout
    from vlp.platform.state import default_storage_root
    from vlp.platform.tracking.runs import client

    try:
        run = client(tracking_uri).get_run(run_id)
    except MlflowException:
        raise VlpUserError(f"run {run_id}: no such run in the tracking store (see `vlp runs list`)") from None
    return RunLayout(run.data.params.get("storage_root") or storage_root or default_storage_root(), run_id).checkpoints


def _checkpoint_state(reference: str) -> tuple[dict[str, Any], str]:
    from vlp.workloads.train.checkpoint import LATEST, load_checkpoint

    storage = open_storage(reference)
    if reference.endswith(".pt"):
        if not storage.exists(reference):
            raise VlpUserError(f"{reference}: no such checkpoint")
        try:
            return load_checkpoint(reference), reference
        except VlpUserError:  # it differs from what its manifest recorded: the message says how
            raise
        except Exception as err:
            raise VlpUserError(f"{reference}: not a readable checkpoint ({type(err).__name__})") from None
    for root in (reference, join(reference, "checkpoints")):  # a checkpoints folder, a run folder
        if storage.exists(join(root, LATEST)):
            return _latest_state(root)
    raise VlpUserError(f"{reference}: not a checkpoint, a run id or models:/NAME@ALIAS (expected a .pt file or a folder with {LATEST})")


def _latest_state(checkpoints_root: str) -> tuple[dict[str, Any], str]:
    from vlp.workloads.train.checkpoint import Checkpointer

    restored = Checkpointer(checkpoints_root).restore()
    if restored is None:
        raise VlpUserError(f"{checkpoints_root}: the run has saved no checkpoint yet")
    return restored.state, restored.entry["uri"]


def _from_state(state: dict[str, Any], uri: str) -> TrainedModel:
    if not isinstance(state, dict) or "model" not in state or "model_cfg" not in state:
        raise VlpUserError(f"{uri}: not a vlp checkpoint (it lacks `model` and `model_cfg`)")
    return TrainedModel(json.loads(state["model_cfg"]), state["model"])
