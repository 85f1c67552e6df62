"""Model presets are data: a JSON file per preset here, or any open_clip model config by name."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from vlp.platform.errors import SpecError

PRESET_PACKAGE = "vlp.workloads.models.presets"


def available_presets() -> list[str]:
    return sorted(entry.name[: -len(".json")] for entry in resources.files(PRESET_PACKAGE).iterdir() if entry.name.endswith(".json"))


def load_model_cfg(preset: str) -> dict[str, Any]:
    """The open_clip `model_cfg` dict for a vlp preset, or for an open_clip config such as `ViT-B-32`."""
    entry = resources.files(PRESET_PACKAGE) / f"{preset}.json"
    if entry.is_file():
        return json.loads(entry.read_text())["model_cfg"]
    import open_clip

    model_cfg = open_clip.get_model_config(preset)
    if model_cfg is None:
        raise SpecError(
            f"model.preset: unknown preset {preset!r}; vlp presets: {', '.join(available_presets())}, "
            "or an open_clip config name (open_clip.list_models())"
        )
    return model_cfg
