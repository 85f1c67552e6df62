"""Decode the JSON arguments every step receives."""

from __future__ import annotations

import json

from vlp.platform.runtime import RuntimeContext
from vlp.platform.spec import ExperimentSpec, spec_from_dict


def decode(spec_json: str, runtime_json: str) -> tuple[ExperimentSpec, RuntimeContext]:
    return spec_from_dict(json.loads(spec_json)), RuntimeContext.model_validate_json(runtime_json)


def storage_root(spec: ExperimentSpec, runtime: RuntimeContext) -> str:
    """The experiment file's `storage_root` wins over the profile's."""
    return spec.storage_root or runtime.storage_root
