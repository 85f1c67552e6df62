"""Class names and prompt templates: from files or names a user passes, from the experiment's `eval:`, from the
dataset, or the defaults — in that order.

A classes file is plain text (one name per line) or JSON/YAML: a list of names, or a mapping with
`classes` and optionally `templates`. A templates file is one template per line, `{}` or `{c}` standing for
the class name (CLIP_benchmark's `zeroshot_classification_templates.txt` reads as is). Instead of a file,
`imagenet1k` names OpenAI's ImageNet-1k class names and `openai_imagenet` / `simple_imagenet` OpenAI's
templates, as open_clip ships them (`open_clip.zero_shot_metadata`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from vlp.platform.errors import VlpUserError
from vlp.platform.spec.evaluation import NAMED_CLASSNAMES, NAMED_TEMPLATES, EvalSection
from vlp.platform.storage import open_storage
from vlp.workloads.data.readers import EvalSource


@dataclass(frozen=True)
class Prompts:
    classnames: tuple[str, ...]
    templates: tuple[str, ...]
    """Each with one `{}` for the class name."""
    verbatim: bool = False
    """Put the class names into the templates as written. False: folder-style names read as words
    (`hot_dog` -> `hot dog`); True for lists meant as prompts (CLIP_benchmark's classnames.txt, named lists)."""

    def prompt_names(self) -> list[str]:
        return list(self.classnames) if self.verbatim else [prompt_name(name) for name in self.classnames]


def load_prompts(source: EvalSource, section: EvalSection, classes: str | None = None, templates: str | None = None) -> Prompts:
    """`classes` and `templates` (a file URI or a list's name, from the command line) win over `section`,
    which wins over what the dataset ships; the section's default templates come last."""
    names, verbatim = source.classnames, source.format == "clip_benchmark"
    chosen_templates = tuple(source.templates) or section_templates(section.templates)
    if "templates" in section.changed_fields():
        chosen_templates = section_templates(section.templates)
    if section.classnames is not None:
        names, verbatim = _class_list(section.classnames), verbatim or isinstance(section.classnames, str)
    if classes:
        if classes in NAMED_CLASSNAMES:
            names, verbatim = named_classnames(classes), True
        else:
            names, from_file = _read_classes(classes)
            chosen_templates = from_file or chosen_templates
    if templates:
        chosen_templates = named_templates(templates) if templates in NAMED_TEMPLATES else _template_lines(_read_text(templates))
    for template in chosen_templates:
        if "{}" not in template and "{c}" not in template:
            raise VlpUserError(f"template {template!r} has no {{}} for the class name")
    return Prompts(tuple(names), tuple(template.replace("{c}", "{}") for template in chosen_templates), verbatim)


def section_templates(templates: str | tuple[str, ...]) -> tuple[str, ...]:
    return named_templates(templates) if isinstance(templates, str) else templates


def named_classnames(name: str) -> tuple[str, ...]:
    from open_clip import zero_shot_metadata

    return tuple(getattr(zero_shot_metadata, NAMED_CLASSNAMES[name]))


def named_templates(name: str) -> tuple[str, ...]:
    """open_clip keeps templates as functions of the class name; filling in `{}` gives them back as strings."""
    from open_clip import zero_shot_metadata

    return tuple(template("{}") for template in getattr(zero_shot_metadata, NAMED_TEMPLATES[name]))


def _class_list(classnames: str | tuple[str, ...]) -> tuple[str, ...]:
    return named_classnames(classnames) if isinstance(classnames, str) else classnames


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


class LabelMap:
    """Each image's class index among the prompts' class names.

    By the index the format gives (CLIP_benchmark's `.cls`) when the class list has the dataset's length (a
    replacement list is positional there too); else by name; else by position in the dataset's own class
    order when the prompts' list is another list of the same length (ImageNet's synset folders read with
    `imagenet1k` names).
    """

    def __init__(self, classnames: tuple[str, ...], dataset_classnames: tuple[str, ...]):
        self.index = class_index(classnames)
        self.positional = len(classnames) == len(dataset_classnames)
        self.dataset_index = {name: position for position, name in reversed(list(enumerate(dataset_classnames)))}

    def __call__(self, label: str | None, label_index: int | None = None) -> int | None:
        if label_index is not None and self.positional:
            return label_index
        found = lookup(self.index, label)
        if found is None and self.positional and label is not None:
            found = self.dataset_index.get(label)
        return found


def normalise(label: str) -> str:
    return label.replace("_", " ").strip().lower()


def prompt_name(classname: str) -> str:
    """What goes into a template: folder names such as `hot_dog` read as `hot dog`."""
    return classname.replace("_", " ")


def _template_lines(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.splitlines() if line.strip())


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
        known = f" (or a named list: {', '.join([*NAMED_CLASSNAMES, *NAMED_TEMPLATES])})"
        raise VlpUserError(f"{uri}: no such file{known}")
    return storage.read_bytes(uri).decode("utf-8")
