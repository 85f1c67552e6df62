"""Captions that tokenizers must treat exactly as open_clip does: the plain ones the shortcuts serve, and the
ones its cleaning changes (Unicode, mojibake, HTML entities, control characters, odd whitespace, long text)."""

from __future__ import annotations

import functools

from hypothesis import strategies as st

PLAIN = [
    "a small red circle and a large blue square",
    "A photo of a   LARGE green star.",
    "two shapes: a diamond and a crescent!! (cartoon) it's 3x bigger",
    "snake_case_words, {braces}, #hashtag @user 100% [x] <tag> $5 ~tilde `tick`",
    "tab\tseparated\nnew line\r\nwindows line\rold mac",
    "   leading and trailing spaces   ",
    "<start_of_text> literal special tokens <end_of_text>",
    "",
    " \t\n ",
]

UNICODE = [
    "naïve café drawing of a triangle",
    "東京タワーの写真",
    "한국어 캡션과 中文标题",
    "Привет, мир! Ελληνικά; مرحبا بالعالم",
    "emoji 😀🐱‍👤 flags 🇫🇷🇯🇵 and skin tones 👍🏽",
    "combining e\u0301 and precomposed é",
    "fullwidth ＡＢＣ１２３ and ligature ﬁsh ﬂower",
    "“curly quotes” and ‘single’ — dashes – and … ellipsis",
    "no\u00a0break\u00a0spaces and ideographic\u3000space",
]

MOJIBAKE = [
    "cafÃ©",
    "The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows.",
    "â€œquotedâ€\x9d text",
    "Ã¢â‚¬Å“double encodedÃ¢â‚¬Â\x9d",
    "ÃƒÂ©tÃƒÂ© Ã\xa0 Paris",
]

HTML = [
    "fish &amp; chips",
    "&amp;amp; twice escaped",
    "&lt;b&gt;bold&lt;/b&gt; &#39;quoted&#39; &#x27;hex&#x27;",
    "&nbsp;non breaking &copy; 2024 &eacute;",
    "AT&T and a & b and &unknown; and &",
    "<p>tags stay</p> &amp; entities go",
]

CONTROL = [
    "null\x00byte and bell\x07",
    "".join(chr(code) for code in range(32)) + "all C0 controls",
    "delete\x7f char",
    "\x1b[31mred terminal text\x1b[0m",
    "zero\u200bwidth\u200cjoiners\u200d and bom\ufeff",
    "line\u2028separator and paragraph\u2029separator",
    "next line\x85 and C1\x80\x9f controls",
    "form\x0cfeed and vertical\x0btab and file\x1cseparator",
    "soft\u00adhyphen and bidi\u202emarks\u202c",
]

LONG = [
    " ".join(["long"] * 200),
    "a" * 500,
    "supercalifragilisticexpialidocious" * 20,
    "a photo of " + ", ".join(f"object number {i}" for i in range(60)),
]

CORPUS = PLAIN + UNICODE + MOJIBAKE + HTML + CONTROL + LONG

# Generated captions: any Unicode, ASCII with every control character, and mixes of the fragments above.
any_text = st.text(max_size=80)
ascii_text = st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=80)
mixed_text = st.lists(st.sampled_from(CORPUS) | any_text | ascii_text, max_size=4).map(" ".join)
captions = st.one_of(any_text, ascii_text, mixed_text)


@functools.cache
def tiny_hf_tokenizer(kind: str, directory: str) -> str:
    """A small HF tokenizer of `kind` saved in `directory`: BERT-like WordPiece (CLS ... SEP) or T5-like Unigram (... </s>)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if kind == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=300, show_progress=False, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"]))
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tokenizer.token_to_id("[CLS]")), ("[SEP]", tokenizer.token_to_id("[SEP]"))]
        )
        wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]")
    else:
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.normalizer = normalizers.NFKC()
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        tokenizer.train_from_iterator(CORPUS, trainers.UnigramTrainer(vocab_size=400, show_progress=False, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"))
        tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", tokenizer.token_to_id("</s>"))])
        wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    wrapped.save_pretrained(directory)
    return directory
