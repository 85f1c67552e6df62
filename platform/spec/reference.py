"""The experiment-file reference as a Markdown table, generated from the field docstrings.

`python -m vlp.platform.spec.reference` prints it; the README embeds it between markers and a test keeps
the two in sync.
"""

from __future__ import annotations

import json
import typing

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from vlp.platform.spec.experiment import ExperimentSpec

BEGIN = "<!-- spec-reference:begin -->"
END = "<!-- spec-reference:end -->"


def reference_rows(model: type[BaseModel] = ExperimentSpec, prefix: str = "") -> list[tuple[str, str, str, str]]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        annotation = field.annotation
        nested = _section_type(annotation)
        if nested is not None:
            rows.append((key, "section", "", field.description or nested.__doc__.strip().splitlines()[0]))
            rows.extend(reference_rows(nested, f"{key}."))
            continue
        rows.append((key, _type_name(annotation), _default(field), (field.description or "").replace("\n", " ")))
    return rows


def markdown_reference() -> str:
    lines = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for key, kind, default, description in reference_rows():
        escaped = description.replace("|", "\\|")
        lines.append(f"| `{key}` | {kind} | {default} | {escaped} |")
    return "\n".join(lines)


def _section_type(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{value}`" for value in typing.get_args(annotation))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(_type_name(arg) for arg in typing.get_args(annotation) if arg is not type(None)) + " (optional)"
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(annotation)[0])}"
    return getattr(annotation, "__name__", str(annotation))


def _default(field) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default if field.default is not PydanticUndefined else field.default_factory()
    if isinstance(value, BaseModel):
        return ""
    text = json.dumps(list(value) if isinstance(value, tuple) else value)
    return f"`{text}`" if len(text) <= 40 else "see `vlp run --help`"


if __name__ == "__main__":
    print(markdown_reference())
