"""open_clip's tokenizers, faster on plain captions: the same token ids, cleaning included.

open_clip cleans every caption with `ftfy.fix_text` and a double `html.unescape` before the rest of its
cleaning (whitespace, lowercase, punctuation; ~0.1-0.4 ms per caption). On printable ASCII with tabs and
newlines and no `&`, both leave the text as it is (ftfy only turns `\\r` into `\\n`, which the whitespace
split erases), so `SkipUnneededCleaning` runs the rest of the tokenizer's own cleaning on such text and
open_clip's whole cleaning on anything else. `CaptionTokenizer` adds a cache of each word's BPE ids on top of
open_clip's `SimpleTokenizer`. tests/unit/workloads/test_caption_tokens.py checks both equal to open_clip on
Unicode, mojibake, HTML entities, control characters and generated text.
"""

from __future__ import annotations

from typing import Callable

import numpy
import torch

# Characters on which ftfy.fix_text and html.unescape change nothing the cleaning keeps: printable ASCII
# less `&` (entities), plus tab, newline and carriage return. ftfy deletes the other C0 controls and DEL.
PASSTHROUGH_CHARACTERS = frozenset(chr(code) for code in range(0x20, 0x7F)) - {"&"} | {"\t", "\n", "\r"}


def _whitespace_clean_lower(text: str) -> str:
    from open_clip.tokenizer import whitespace_clean

    return whitespace_clean(text).lower()


def _after_basic_clean() -> dict[Callable[[str], str], Callable[[str], str]]:
    """open_clip's clean function for each `clean` setting -> what it does after ftfy and html.unescape."""
    from open_clip.tokenizer import canonicalize_text, get_clean_fn, whitespace_clean

    # Each open_clip clean function is `rest(basic_clean(text))`, and basic_clean ends with str.strip().
    # Module-level functions only: DataLoader workers may receive the tokenizer pickled.
    rest = {"lower": _whitespace_clean_lower, "whitespace": whitespace_clean, "canonicalize": canonicalize_text}
    return {get_clean_fn(kind): step for kind, step in rest.items()}


class SkipUnneededCleaning:
    """A tokenizer's clean function that skips ftfy and HTML unescaping on text they would not change."""

    def __init__(self, clean_fn: Callable[[str], str]):
        self.full = clean_fn
        self.after_basic_clean = _after_basic_clean().get(clean_fn)

    def __call__(self, text: str) -> str:
        if self.after_basic_clean is not None and text.isascii() and PASSTHROUGH_CHARACTERS.issuperset(text):
            return self.after_basic_clean(text.strip())
        return self.full(text)


class CaptionTokenizer:
    """open_clip's SimpleTokenizer with cached word ids and the cleaning shortcut; same ids, same shape."""

    def __init__(self, tokenizer, max_cached_words: int = 500_000):
        self.tokenizer = tokenizer
        self.context_length = tokenizer.context_length
        self.max_cached_words = max_cached_words
        self.clean = SkipUnneededCleaning(tokenizer.clean_fn)
        self.word_ids: dict[str, list[int]] = {}

    def __call__(self, texts: str | list[str], context_length: int | None = None) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        length = context_length or self.context_length
        sot, eot = self.tokenizer.sot_token_id, self.tokenizer.eot_token_id
        if self.tokenizer.reduction_fn is not None:
            return self.tokenizer.reduction_fn(texts, context_length=length, sot_token_id=sot, eot_token_id=eot, encode_fn=self.encode)
        # Rows go into a numpy array: torch.tensor per row (or of nested lists) cost more than the cached encoding.
        result = numpy.zeros((len(texts), length), dtype=numpy.int64)
        for row, text in enumerate(texts):
            ids = [sot, *self.encode(text), eot]
            if len(ids) > length:
                ids = ids[:length]
                ids[-1] = eot
            result[row, : len(ids)] = ids
        return torch.from_numpy(result)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for word in self.tokenizer.pat.findall(self.clean(text)):
            cached = self.word_ids.get(word)
            if cached is None:
                cached = self._encode_word(word)
            ids.extend(cached)
        return ids

    def _encode_word(self, word: str) -> list[int]:
        tokenizer = self.tokenizer
        if len(self.word_ids) >= self.max_cached_words:
            self.word_ids.clear()
            # open_clip's own BPE cache grows without bound; keep only its special tokens, as it starts.
            tokenizer.cache = {tokenizer.decoder[i]: tokenizer.decoder[i] for i in tokenizer.all_special_ids}
        # SimpleTokenizer.encode's per-word step, verbatim.
        token = "".join(tokenizer.byte_encoder[b] for b in word.encode("utf-8"))
        ids = [tokenizer.encoder[piece] for piece in tokenizer.bpe(token).split(" ")]
        self.word_ids[word] = ids
        return ids
