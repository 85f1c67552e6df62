"""`register:` — what to call the model in the registry and which metrics it must reach."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from vlp.platform.spec.base import Section

GATE_PATTERN = re.compile(r"^\s*(?P<metric>[A-Za-z0-9_./-]+)\s*(?P<op>>=|<=|>|<|==)\s*(?P<value>-?\d+(\.\d+)?([eE]-?\d+)?)\s*$")


class RegisterSection(Section):
    """Registration in the MLflow model registry."""

    enabled: bool = True
    """Log and register the trained model."""
    model_name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    """Registered model name; default: the experiment's name."""
    gates: tuple[str, ...] = ()
    """Conditions a version must meet to be promoted, such as `zeroshot/shapes/acc1 >= 0.8`; each names a metric the
    configured evaluation logs (a name it never logs is refused when the file is read)."""

    @field_validator("gates")
    @classmethod
    def _gates_parse(cls, gates: tuple[str, ...]) -> tuple[str, ...]:
        for gate in gates:
            if not GATE_PATTERN.match(gate):
                raise ValueError(f"gate {gate!r} is not of the form 'metric >= number' (ops: >= <= > < ==)")
        return gates
