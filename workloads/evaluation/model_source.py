"""Turn what a user names as a model into a loaded `BuiltModel`, with a name for the results.

Accepted references, tried in this order:
- `models:/NAME@ALIAS` or `models:/NAME/VERSION` — a registered version (the checkpoint its register step logged);
- a checkpoint URI (local or s3://): a `step-*.pt` file, or a run's `checkpoints/` folder (its latest);
- a model config name — a vlp preset or an open_clip config such as `ViT-B-32` — with an optional local
  weights file (`checkpoint_file`); without one the weights are random.

Resolution is `vlp.workloads.models.weights` (the same code `model.init_from` uses); this module adds the
checkpoint folders and turns its messages into ones about the model argument.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from vlp.platform.errors import SpecError, VlpUserError
from vlp.platform.storage import join, open_storage
from vlp.workloads.models.factory import BuiltModel

REGISTRY_PREFIX = "models:/"


@dataclass(frozen=True)
class LoadedModel:
    built: BuiltModel
    name: str
    """How results name the model: `NAME@ALIAS`, `NAME/VERSION`, `<run id>/step-N`, or the config name."""
    checkpoint_uri: str | None
    """Where the weights came from (None for random weights)."""
    model: str = ""
    """CLIP_benchmark's `model`: the config name, the registered model's name, or `<run id>/step-N`."""
    pretrained: str = ""
    """CLIP_benchmark's `pretrained`: the weights (a file, a checkpoint, `models:/NAME@ALIAS`); "" for random weights."""


def load_model(reference: str, checkpoint_file: str | None = None, tracking_uri: str | None = None) -> LoadedModel:
    from vlp.workloads.models import weights
    from vlp.workloads.models.catalog import available_presets, load_model_cfg
    from vlp.workloads.models.factory import build_model_from_cfg

    try:
        if reference.startswith(REGISTRY_PREFIX):
            resolved, name, source = weights.registered_weights(reference, tracking_uri), reference[len(REGISTRY_PREFIX):], reference
            model = re.split(r"[@/]", name, maxsplit=1)[0]
        elif (checkpoint := checkpoint_uri_of(reference)) is not None:
            resolved, name, source = weights.checkpoint_weights(checkpoint), _checkpoint_name(checkpoint), checkpoint
            model = name
        elif reference in available_presets():
            resolved = weights.checkpoint_weights(checkpoint_file) if checkpoint_file else None
            name, source, model = _config_name(reference, checkpoint_file), checkpoint_file, reference
            if resolved is None or resolved.model_cfg is None:
                resolved = weights.Weights(reference, load_model_cfg(reference), resolved.state_dict if resolved else None)
        else:
            import open_clip

            if open_clip.get_model_config(reference) is None:
                raise VlpUserError(
                    f"model {reference!r}: not a registered model (models:/NAME@ALIAS), a checkpoint, a vlp preset, "
                    "or an open_clip config (see open_clip.list_models())"
                )
            resolved, name, source = weights.open_clip_weights(reference, checkpoint_file), _config_name(reference, checkpoint_file), checkpoint_file
            model = reference
        built = build_model_from_cfg(resolved.model_cfg)
        weights.load_weights(built.model, resolved, built.arch)
    except SpecError as err:
        raise VlpUserError(str(err).replace("model.init_from.checkpoint: ", "").replace("model.init_from: ", "")) from None
    built.model.eval()
    return LoadedModel(built, name, source, model, source or "")


def checkpoint_uri_of(reference: str) -> str | None:
    """The checkpoint object a URI points at (itself, or a checkpoints folder's latest); None if it is a bare name."""
    if "/" not in reference and not reference.endswith(".pt"):
        return None
    storage = open_storage(reference)
    if reference.endswith(".pt"):
        if not storage.exists(reference):
            raise VlpUserError(f"{reference}: no such checkpoint")
        return reference
    for pointer in (join(reference, "latest.json"), join(reference, "checkpoints", "latest.json")):  # a checkpoints folder, a run folder
        if storage.exists(pointer):
            return json.loads(storage.read_bytes(pointer))["uri"]
    raise VlpUserError(f"{reference}: not a checkpoint (expected a .pt file or a folder with latest.json)")


def _checkpoint_name(uri: str) -> str:
    """…/runs/<run id>/checkpoints/step-00000600-<nonce>.pt -> `<run id>/step-00000600`."""
    parts = uri.rstrip("/").split("/")
    step = re.match(r"step-\d{8}", parts[-1])
    name = step.group(0) if step else parts[-1].removesuffix(".pt")
    return f"{parts[-3]}/{name}" if len(parts) >= 3 and parts[-2] == "checkpoints" else name


def _config_name(name: str, checkpoint_file: str | None) -> str:
    return f"{name}:{checkpoint_file.rsplit('/', 1)[-1]}" if checkpoint_file else name
