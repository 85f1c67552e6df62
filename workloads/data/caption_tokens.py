"""open_clip's tokenizer, faster on plain captions: same token ids, ~10× less time per new caption.

open_clip cleans every caption with ftfy and a double HTML unescape before BPE (~0.4 ms per caption).
For ASCII text without `&` those steps change nothing, so we lowercase, split with the tokenizer's own
pattern and cache the ids of each word. Anything else goes through open_clip unchanged.
"""

from __future__ import annotations

import torch

class CaptionTokenizer:
    def __init__(self, tokenizer, max_cached_words: int = 500_000):
        self.tokenizer = tokenizer
        self.context_length = tokenizer.context_length
        self.max_cached_words = max_cached_words
        self.word_ids: dict[str, list[int]] = {}

    def __call__(self, texts: str | list[str], context_length: int | None = None) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        length = context_length or self.context_length
        result = torch.zeros(len(texts), length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.tokenizer.sot_token_id, *self.encode(text), self.tokenizer.eot_token_id]
            if len(ids) > length:
                ids = ids[:length]
                ids[-1] = self.tokenizer.eot_token_id
            result[row, : len(ids)] = torch.tensor(ids)
        return result

    def encode(self, text: str) -> list[int]:
        if not text.isascii() or "&" in text or getattr(self.tokenizer, "reduction_fn", None) is not None:
            return self.tokenizer.encode(text)
        ids: list[int] = []
        for word in self.tokenizer.pat.findall(" ".join(text.split()).lower()):
            cached = self.word_ids.get(word)
            if cached is None:
                if len(self.word_ids) >= self.max_cached_words:
                    self.word_ids.clear()
                # Plain ASCII: the byte encoder maps each character to itself-equivalent unicode.
                token = "".join(self.tokenizer.byte_encoder[b] for b in word.encode("utf-8"))
                cached = [self.tokenizer.encoder[piece] for piece in self.tokenizer.bpe(token).split(" ")]
                self.word_ids[word] = cached
            ids.extend(cached)
        return ids
