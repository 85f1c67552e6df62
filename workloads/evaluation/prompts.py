"""Class names and prompt templates: from files a user passes, from the dataset, or the defaults.

A classes file is plain text (one name per line) or JSON/YAML: a list of names, or a mapping with
`classes` and optionally `templates`. A templates file is one template per line, `{}` standing for the
class name (CLIP_benchmark's `zeroshot_classification_templates.txt` reads as is).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from vlp.platform.errors import VlpUserError
from vlp.platform.storage import open_storage


@dataclass(frozen=True)
class Prompts:
    classnames: tuple[str, ...]
    templates: tuple[str, ...]


def load_prompts(classes_uri: str | None, templates_uri: str | None, dataset_classnames: tuple[str, ...], default_templates: tuple[str, ...]) -> Prompts:
    classnames, templates = dataset_classnames, default_templates
    if classes_uri:
        classnames, from_file = _read_classes(classes_uri)
        templates = from_file or templates
    if templates_uri:
        templates = tuple(line for line in _read_text(templates_uri).splitlines() if line.strip())
    for template in templates:
        if "{}" not in template and "{c}" not in template:
            raise VlpUserError(f"template {template!r} has no {{}} for the class name")
    return Prompts(tuple(classnames), tuple(template.replace("{c}", "{}") for template in templates))


def class_index(classnames: tuple[str, ...] | list[str]) -> dict[str, int]:
    """Label → index, matching folder-style labels too (`hot_dog` and `Hot dog` both find `hot dog`)."""
    index: dict[str, int] = {}
    for position, name in enumerate(classnames):
        index.setdefault(name, position)
        index.setdefault(normalise(name), position)
    return index


def lookup(index: dict[str, int], label: str | None) -> int | None:
    """The class index of a label (exact, then normalised); None for no label or an unknown one."""
    if label is None:
        return None
    return index.get(label, index.get(normalise(label)))


def normalise(label: str) -> str:
    return label.replace("_", " ").strip().lower()


def prompt_name(classname: str) -> str:
    """What goes into a template: folder names such as `hot_dog` read as `hot dog`."""
    return classname.replace("_", " ")


def _read_classes(uri: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    text = _read_text(uri)
    if uri.lower().endswith((".json", ".yaml", ".yml")):
        import yaml

        document = json.loads(text) if uri.lower().endswith(".json") else yaml.safe_load(text)
        if isinstance(document, list):
            return tuple(map(str, document)), ()
        if isinstance(document, dict) and isinstance(document.get("classes"), list):
            return tuple(map(str, document["classes"])), tuple(map(str, document.get("templates") or ()))
        raise VlpUserError(f"{uri}: expected a list of class names or a mapping with `classes` (and `templates`)")
    return tuple(line.strip() for line in text.splitlines() if line.strip()), ()


def _read_text(uri: str) -> str:
    storage = open_storage(uri)
    if not storage.exists(uri):
        raise VlpUserError(f"{uri}: no such file")
    return storage.read_bytes(uri).decode("utf-8")
