"""The cached tokenizer and the cleaning shortcut give open_clip's ids for every caption, cleaning included."""

from __future__ import annotations

import functools
import itertools
import pickle
import random

import pytest
import torch
from hypothesis import given, settings
from open_clip.tokenizer import SimpleTokenizer, get_clean_fn
from tokenizer_corpus import CORPUS, PLAIN, captions

from vlp.workloads.data.caption_tokens import PASSTHROUGH_CHARACTERS, CaptionTokenizer, SkipUnneededCleaning

CLEAN_KINDS = ("lower", "whitespace", "canonicalize")


@functools.cache
def open_clip_tokenizer(clean: str = "lower", context_length: int = 77, reduction_mask: str = "") -> SimpleTokenizer:
    return SimpleTokenizer(context_length=context_length, clean=clean, reduction_mask=reduction_mask)


@functools.cache
def cached_tokenizer(clean: str = "lower", context_length: int = 77, reduction_mask: str = "") -> CaptionTokenizer:
    return CaptionTokenizer(SimpleTokenizer(context_length=context_length, clean=clean, reduction_mask=reduction_mask))


@pytest.mark.parametrize("clean", CLEAN_KINDS)
@pytest.mark.parametrize("context_length", [77, 16])
def test_corpus_gets_open_clips_ids(clean, context_length):
    reference, fast = open_clip_tokenizer(clean, context_length), cached_tokenizer(clean, context_length)
    expected = reference(CORPUS)
    assert torch.equal(fast(CORPUS), expected)
    assert torch.equal(fast(CORPUS), expected)  # now served from the word cache
    for row, caption in enumerate(CORPUS):
        assert torch.equal(fast(caption), expected[row : row + 1]), caption


def test_truncation_keeps_the_end_of_text_token_last():
    tokens = cached_tokenizer("lower", 16)([" ".join(["long"] * 200), "short"])
    eot = open_clip_tokenizer().eot_token_id
    assert tokens.shape == (2, 16) and tokens[0, -1] == eot and (tokens[1] == eot).sum() == 1


def test_call_time_context_length_overrides_the_configured_one():
    assert torch.equal(cached_tokenizer()(CORPUS, context_length=8), open_clip_tokenizer()(CORPUS, context_length=8))


@settings(max_examples=150, deadline=None)
@given(caption=captions)
def test_generated_captions_get_open_clips_ids(caption):
    for clean in CLEAN_KINDS:
        assert torch.equal(cached_tokenizer(clean, 24)(caption), open_clip_tokenizer(clean, 24)(caption)), clean


@pytest.mark.parametrize("clean", CLEAN_KINDS)
def test_shortcut_equals_open_clips_cleaning_on_every_pair_of_passthrough_characters(clean):
    full = get_clean_fn(clean)
    shortcut = SkipUnneededCleaning(full)
    assert shortcut.after_basic_clean is not None
    for pair in itertools.product(sorted(PASSTHROUGH_CHARACTERS), repeat=2):
        text = "A" + "".join(pair) + "b"
        assert shortcut.after_basic_clean(text.strip()) == full(text), repr(text)


def test_characters_open_clips_cleaning_changes_are_not_passed_through():
    full = get_clean_fn("whitespace")
    changed = {chr(code) for code in range(0x80) if full(f"a{chr(code)}b") != f"a{chr(code)}b" and not chr(code).isspace()}
    assert changed and not changed & PASSTHROUGH_CHARACTERS
    assert "&" not in PASSTHROUGH_CHARACTERS and full("a &amp; b") == "a & b"


def test_unknown_clean_functions_always_take_the_full_cleaning():
    shortcut = SkipUnneededCleaning(str.upper)
    assert shortcut.after_basic_clean is None and shortcut("plain text") == "PLAIN TEXT"


@pytest.mark.parametrize("mask", ["simple", "random", "shuffle"])
def test_reduction_masks_match_open_clip_under_the_same_seed(mask):
    texts = [" ".join(f"word{i}" for i in range(40)), "short caption", *PLAIN]
    reference, fast = open_clip_tokenizer("lower", 16, mask), cached_tokenizer("lower", 16, mask)
    random.seed(7)
    torch.manual_seed(7)
    expected = reference(texts)
    random.seed(7)
    torch.manual_seed(7)
    assert torch.equal(fast(texts), expected)
    assert not torch.equal(expected, open_clip_tokenizer("lower", 16)(texts))  # the mask did something


def test_bounded_word_cache_gives_the_same_ids_and_bounds_open_clips_bpe_cache():
    fast = CaptionTokenizer(SimpleTokenizer(context_length=77), max_cached_words=3)
    assert torch.equal(fast(CORPUS), open_clip_tokenizer()(CORPUS))
    assert len(fast.word_ids) <= 3
    assert len(fast.tokenizer.cache) <= 3 + len(fast.tokenizer.all_special_ids)
    assert fast.tokenizer.bpe("<start_of_text>") == "<start_of_text>"


@pytest.mark.parametrize("clean", CLEAN_KINDS)
def test_pickled_tokenizer_gives_the_same_ids(clean):
    """DataLoader workers started with spawn receive the collate function's tokenizer pickled."""
    fast = CaptionTokenizer(SimpleTokenizer(context_length=24, clean=clean))
    assert torch.equal(pickle.loads(pickle.dumps(fast))(CORPUS), open_clip_tokenizer(clean, 24)(CORPUS))
