"""Which class names and templates an evaluation uses, and how each image's label finds its class."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vlp.platform.errors import VlpUserError
from vlp.platform.spec.evaluation import DEFAULT_TEMPLATES, EvalSection
from vlp.workloads.data.readers import EvalSource
from vlp.workloads.evaluation.prompts import LabelMap, load_prompts, named_classnames, named_templates


def source(classnames=("cat", "dog"), templates=(), format="wds") -> EvalSource:
    return EvalSource(name="toy", uri="toy", format=format, classnames=tuple(classnames), read=lambda: iter(()), templates=tuple(templates))


def test_dataset_templates_win_over_the_default_but_not_over_the_experiment_or_the_command_line(tmp_path):
    shipped = source(templates=("a photo of a {c}.",))
    assert load_prompts(shipped, EvalSection()).templates == ("a photo of a {}.",)
    assert load_prompts(source(), EvalSection()).templates == DEFAULT_TEMPLATES
    assert load_prompts(shipped, EvalSection(templates=("art of a {}",))).templates == ("art of a {}",)
    assert load_prompts(shipped, EvalSection(templates="simple_imagenet")).templates == named_templates("simple_imagenet")
    lines = tmp_path / "templates.txt"
    lines.write_text("a {c} here\n\nthe {}\n")
    assert load_prompts(shipped, EvalSection(templates=("art of a {}",)), templates=str(lines)).templates == ("a {} here", "the {}")
    assert load_prompts(shipped, EvalSection(), templates="openai_imagenet").templates[0] == "a bad photo of a {}."


def test_named_class_lists_replace_the_datasets_and_are_used_verbatim():
    prompts = load_prompts(source(), EvalSection(), classes="imagenet1k")
    assert len(prompts.classnames) == 1000 and prompts.classnames[0] == "tench" and prompts.verbatim
    from_section = load_prompts(source(), EvalSection(classnames="imagenet1k"))
    assert from_section.classnames == named_classnames("imagenet1k")
    assert load_prompts(source(("hot_dog",)), EvalSection()).prompt_names() == ["hot dog"]
    assert load_prompts(source(("hot_dog",), format="clip_benchmark"), EvalSection()).prompt_names() == ["hot_dog"]


def test_unknown_names_are_refused_where_they_are_written(tmp_path):
    with pytest.raises(ValidationError, match="unknown template set 'openai'"):
        EvalSection(templates="openai")
    with pytest.raises(ValidationError, match="unknown class list 'imagenet'"):
        EvalSection(classnames="imagenet")
    with pytest.raises(VlpUserError, match="no such file .*imagenet1k"):
        load_prompts(source(), EvalSection(), classes=str(tmp_path / "imagenet"))


def test_labels_find_their_class_by_index_then_name_then_dataset_position():
    # CLIP_benchmark's .cls index, even where two classes share a name (ImageNet's two "missile"s).
    assert LabelMap(("missile", "missile", "tank"), ("missile", "missile", "tank"))("missile", 1) == 1
    by_name = LabelMap(("dog", "cat"), ("cat", "dog"))
    assert by_name("cat") == 1 and by_name("Hot_Dog") is None
    # Synset folders read with ImageNet's names: the folders' sorted order is the class order.
    synsets = LabelMap(("tench", "goldfish"), ("n01440764", "n01443537"))
    assert synsets("n01443537") == 1 and synsets("n99999999") is None
    # A class list of another length cannot be positional: only names match.
    assert LabelMap(("cat",), ("cat", "dog"))("dog", 1) is None
