"""Read an experiment file, apply `--set a.b=c` overrides and validate, with errors that name the field."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from vlp.platform.errors import SpecError
from vlp.platform.spec.experiment import ExperimentSpec

PLAIN_KEY = re.compile(r"^[\w-]+$")


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentSpec:
    document = read_yaml_mapping(path)
    if "description" not in document:
        comment = leading_comment(Path(path).read_text())
        if comment:
            document = {**document, "description": comment}
    return spec_from_dict(document, overrides, source=str(path))


def leading_comment(text: str) -> str:
    """The `#` lines at the top of a YAML file, without their `#`, as one paragraph per blank comment line."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        lines.append(stripped[1:].strip())
    paragraphs = " ".join(line if line else "\n\n" for line in lines).replace(" \n\n ", "\n\n")
    return paragraphs.strip()


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such experiment file")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(err, "problem", None) or err).split())  # reader errors span lines
        raise SpecError(f"{path}:{where} is not valid YAML ({problem})") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: is not a text file") from None
    if not isinstance(document, dict):
        raise SpecError(f"{path}: must be a YAML mapping with at least `name` and `train`")
    return document


def spec_from_dict(document: dict[str, Any], overrides=(), source: str = "experiment") -> ExperimentSpec:
    document = apply_overrides(document, overrides)
    try:
        spec = ExperimentSpec.model_validate(document)
    except ValidationError as err:
        raise SpecError(f"{source}: {describe_validation_error(err)}") from None
    check_metric_names(spec, source)
    if spec.sweep is not None:
        trial_specs(spec, source)
    return spec


def trial_specs(spec: ExperimentSpec, source: str = "experiment") -> list[tuple[dict, ExperimentSpec]]:
    """The sweep's trials: (field values, the experiment without `sweep:` with those values set). A swept path
    that names no field, or a value a field refuses, is a SpecError naming it."""
    document = spec.model_dump(mode="json", by_alias=True, exclude={"sweep"})
    for path in spec.sweep.parameters:
        if not _names_a_field(ExperimentSpec, path.split(".")):
            raise SpecError(f"{source}: sweep.parameters.{path}: no such field in the experiment (fields are paths such as train.lr)")
    trials = []
    for number, assignment in enumerate(spec.sweep.assignments(), 1):
        overrides = [f"{path}={json.dumps(value)}" for path, value in assignment.items()]
        try:
            trials.append((assignment, spec_from_dict(document, overrides, source=f"{source}: sweep trial {number}")))
        except SpecError as err:
            raise SpecError(str(err)) from None
    return trials


def _names_a_field(model, parts: list[str]) -> bool:
    from pydantic import BaseModel

    fields = {field.alias or name: field for name, field in model.model_fields.items()} | dict(model.model_fields)
    field = fields.get(parts[0])
    if field is None:
        return False
    if len(parts) == 1:
        return True
    nested = [kind for kind in getattr(field.annotation, "__args__", (field.annotation,)) if isinstance(kind, type) and issubclass(kind, BaseModel)]
    return any(_names_a_field(kind, parts[1:]) for kind in nested)


def check_metric_names(spec: ExperimentSpec, source: str = "experiment") -> None:
    """Every gate and headline metric is one the configured evaluation logs (SpecError naming it otherwise)."""
    from vlp.platform.spec.metrics import describe_known, known_metric_patterns, unknown_metric
    from vlp.platform.spec.registration import GATE_PATTERN

    patterns = known_metric_patterns(spec)
    named = [("register.gates", GATE_PATTERN.match(gate)["metric"]) for gate in spec.registration.gates]
    named += [("headline", metric) for metric in spec.headline]
    if spec.sweep is not None:
        named.append(("sweep.metric", spec.sweep.metric))
    for field, metric in named:
        if unknown_metric(metric, patterns):
            raise SpecError(f"{source}: {field}: {metric!r} is not a metric this experiment's evaluation logs "
                            f"(known: {describe_known(patterns)})")


def apply_overrides(document: dict[str, Any], overrides) -> dict[str, Any]:
    """`train.lr=1e-3` sets document['train']['lr']; the value is parsed as YAML (`[a, b]`, `null`, `2`)."""
    result = _deep_copy(document)
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--set {override!r}: expected KEY=VALUE such as train.lr=0.001")
        parts = key.strip().split(".")
        node = result
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise SpecError(f"--set {override!r}: {part} is not a section")
            node = child
        try:
            node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            node[parts[-1]] = raw
    return result


def describe_validation_error(err: ValidationError, unknown_key_hint: str = "check the spelling; `vlp run --help` lists the fields") -> str:
    """The first problem as `field.path: what is wrong`, plus how many more there are. The input is never quoted
    (it may be a secret); `unknown_key_hint` says where the valid keys are listed."""
    problems = err.errors(include_input=False)
    first = problems[0]
    # Keys come from the user's file: quote any that is not a plain name, so a newline in a key stays on one line.
    location = ".".join(part if PLAIN_KEY.match(part) else repr(part) for part in map(str, first["loc"])) or "(root)"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = f"unknown key ({unknown_key_hint})"
    elif first["type"] == "missing":
        message = "required field is missing"
    elif message.startswith("Value error, "):
        message = message[len("Value error, "):]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    if not first["loc"] and re.match(r"[\w.]+: ", message):
        return f"{message}{more}"  # a check across sections names its own field
    return f"{location}: {message}{more}"


def _deep_copy(value):
    if isinstance(value, dict):
        return {key: _deep_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep_copy(item) for item in value]
    return value
