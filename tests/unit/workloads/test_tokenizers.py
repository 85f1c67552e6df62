"""build_tokenizer gives what open_clip.get_tokenizer gives, for every open_clip config.

open_clip's choice depends only on a config's tokenizer settings (text_cfg's hf_tokenizer_name, tokenizer_kwargs,
context_length, tokenizer_mode, and "siglip" in the name when no HF tokenizer is named), so one config of each
distinct setting stands for all configs that share it. HF tokenizers cannot be downloaded here: each HF setting
is checked with a small tokenizer trained on the spot, given to open_clip as `local-dir:` (its own way to load
a tokenizer from a folder) and to vlp as `hf_tokenizer_name`.
"""

from __future__ import annotations

import copy
import functools
import json
import pickle
import sys
from pathlib import Path

import open_clip
import pytest
import torch
from hypothesis import given, settings
from open_clip.tokenizer import HFTokenizer, SimpleTokenizer
from tokenizer_corpus import CORPUS, captions, tiny_hf_tokenizer

from vlp.platform.errors import SpecError
from vlp.workloads.data.caption_tokens import CaptionTokenizer
from vlp.workloads.data.tokenizers import build_tokenizer, open_clip_tokenizer


def tokenizer_setting(name: str) -> tuple:
    text_cfg = open_clip.get_model_config(name).get("text_cfg", {})
    hf_name = text_cfg.get("hf_tokenizer_name", "")
    return (
        hf_name and ("wordpiece" if "bert" in hf_name else "sentencepiece"),
        text_cfg.get("context_length"),
        json.dumps(text_cfg.get("tokenizer_kwargs") or {}, sort_keys=True),
        text_cfg.get("tokenizer_mode"),
        not hf_name and "siglip" in name.lower(),
    )


def one_config_per_setting(hf: bool) -> list[str]:
    representatives: dict[tuple, str] = {}
    for name in open_clip.list_models():
        setting = tokenizer_setting(name)
        if bool(setting[0]) == hf:
            representatives.setdefault(setting, name)
    return sorted(representatives.values())


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory) -> dict[str, Path]:
    return {kind: Path(tiny_hf_tokenizer(kind, str(tmp_path_factory.mktemp(kind)))) for kind in ("wordpiece", "sentencepiece")}


@pytest.mark.parametrize("name", one_config_per_setting(hf=False))
def test_clip_bpe_configs_get_open_clips_tokenizer(name):
    reference = open_clip.get_tokenizer(name)
    model_cfg = open_clip.get_model_config(name)
    assert type(open_clip_tokenizer(model_cfg)) is type(reference) is SimpleTokenizer
    tokenizer = build_tokenizer(model_cfg)
    assert isinstance(tokenizer, CaptionTokenizer) and tokenizer.context_length == reference.context_length
    assert torch.equal(tokenizer(CORPUS), reference(CORPUS))


@pytest.mark.parametrize("name", one_config_per_setting(hf=True))
def test_hf_configs_get_open_clips_tokenizer(name, hf_dirs, tmp_path):
    model_cfg = open_clip.get_model_config(name)
    folder = tmp_path / "local-dir"
    folder.mkdir()
    for file in hf_dirs[tokenizer_setting(name)[0]].iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg}))
    reference = open_clip.get_tokenizer(f"local-dir:{folder}")
    local_cfg = copy.deepcopy(model_cfg)
    local_cfg["text_cfg"]["hf_tokenizer_name"] = str(folder)
    tokenizer = build_tokenizer(local_cfg)
    assert isinstance(reference, HFTokenizer) and isinstance(tokenizer, HFTokenizer)
    assert tokenizer.context_length == reference.context_length == model_cfg["text_cfg"].get("context_length", 77)
    assert tokenizer.strip_sep_token == reference.strip_sep_token and tokenizer.tokenizer_mode == reference.tokenizer_mode
    assert torch.equal(tokenizer(CORPUS), reference(CORPUS))
    assert torch.equal(pickle.loads(pickle.dumps(tokenizer))(CORPUS), reference(CORPUS))  # as DataLoader workers get it


@settings(max_examples=100, deadline=None)
@given(caption=captions)
def test_generated_captions_get_open_clips_hf_ids(caption, hf_dirs):
    for clean in ("canonicalize", "whitespace", "lower"):
        for kind, folder in hf_dirs.items():
            fast = hf_pair(str(folder), clean)
            assert torch.equal(fast[0](caption), fast[1](caption)), (kind, clean)


@functools.cache
def hf_pair(folder: str, clean: str):
    model_cfg = {"text_cfg": {"hf_tokenizer_name": folder, "context_length": 24, "tokenizer_kwargs": {"clean": clean}}}
    return build_tokenizer(model_cfg), HFTokenizer(folder, context_length=24, clean=clean)


def test_the_factory_builds_the_configs_tokenizer(hf_dirs):
    from vlp.workloads.models.catalog import load_model_cfg
    from vlp.workloads.models.factory import build_model_from_cfg

    model_cfg = load_model_cfg("shapes-vit-micro")
    built = build_model_from_cfg(model_cfg)
    assert isinstance(built.tokenizer, CaptionTokenizer)
    assert built.tokenizer(CORPUS).shape == (len(CORPUS), model_cfg["text_cfg"]["context_length"])
    model_cfg["text_cfg"].update(hf_tokenizer_name=str(hf_dirs["sentencepiece"]), tokenizer_kwargs={"clean": "canonicalize"})
    built = build_model_from_cfg(model_cfg)
    reference = HFTokenizer(str(hf_dirs["sentencepiece"]), context_length=model_cfg["text_cfg"]["context_length"], clean="canonicalize")
    assert torch.equal(built.tokenizer(CORPUS), reference(CORPUS))


def test_an_uncached_hub_tokenizer_offline_is_one_clear_error(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    model_cfg = open_clip.get_model_config("ViT-B-16-SigLIP")
    model_cfg["text_cfg"]["hf_tokenizer_name"] = "vlp-tests/no-such-tokenizer"
    with pytest.raises(SpecError, match=r"hf_tokenizer_name: tokenizer 'vlp-tests/no-such-tokenizer' is neither in the Hugging Face cache.*hf download vlp-tests/no-such-tokenizer") as raised:
        build_tokenizer(model_cfg)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("offline", [True, False])
def test_the_cache_is_tried_before_the_hub(monkeypatch, offline):
    from huggingface_hub import constants

    calls = []

    def fake_hf_tokenizer(name, **options):
        calls.append(options.get("local_files_only", False))
        if options.get("local_files_only"):
            raise OSError("not cached")
        return "downloaded"

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(open_clip.tokenizer, "HFTokenizer", fake_hf_tokenizer)
    model_cfg = {"text_cfg": {"hf_tokenizer_name": "org/tokenizer"}}
    if offline:
        with pytest.raises(SpecError, match="neither in the Hugging Face cache"):
            open_clip_tokenizer(model_cfg)
        assert calls == [True]
    else:
        assert open_clip_tokenizer(model_cfg) == "downloaded" and calls == [True, False]


@pytest.mark.parametrize(
    ("text_cfg", "message"),
    [
        ({"hf_tokenizer_name": "/no/such/folder"}, r"hf_tokenizer_name: /no/such/folder is not a directory"),
        ({"hf_tokenizer_name": "{empty}"}, r"hf_tokenizer_name: the folder .* holds no tokenizer"),
        ({"hf_tokenizer_name": "{empty}", "tokenizer_kwargs": {"clean": "upper"}}, r"tokenizer_kwargs.clean: 'upper' is not one of"),
        ({"tokenizer_kwargs": {"clean": "upper"}}, r"tokenizer_kwargs.clean: 'upper' is not one of lower, whitespace, canonicalize"),
        ({"tokenizer_kwargs": {"strip_sep_token": True}}, r"tokenizer_kwargs: unknown option\(s\) strip_sep_token for CLIP's tokenizer"),
        ({"tokenizer_kwargs": {"reduction_mask": "half"}}, r"tokenizer_kwargs.reduction_mask: 'half' is not one of"),
        ({"tokenizer_kwargs": {"bpe_path": "/no/such/vocab.txt.gz"}}, r"tokenizer_kwargs.bpe_path: /no/such/vocab.txt.gz is not a file"),
    ],
)
def test_bad_tokenizer_settings_are_one_line_errors(text_cfg, message, tmp_path):
    if text_cfg.get("hf_tokenizer_name") == "{empty}":
        text_cfg = {**text_cfg, "hf_tokenizer_name": str(tmp_path)}
    with pytest.raises(SpecError, match=message) as raised:
        build_tokenizer({"text_cfg": text_cfg})
    assert "\n" not in str(raised.value)


def test_hf_tokenizers_without_transformers_say_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(SpecError, match=r"'timm/ViT-B-16-SigLIP' is a Hugging Face tokenizer and needs the transformers package"):
        build_tokenizer(open_clip.get_model_config("ViT-B-16-SigLIP"))


def test_context_length_and_options_come_from_text_cfg():
    tokenizer = build_tokenizer({"text_cfg": {"context_length": 12, "tokenizer_kwargs": {"clean": "canonicalize"}}})
    reference = SimpleTokenizer(context_length=12, clean="canonicalize")
    assert tokenizer.context_length == 12 and torch.equal(tokenizer(CORPUS), reference(CORPUS))
    assert build_tokenizer({"text_cfg": {}}).context_length == 77
