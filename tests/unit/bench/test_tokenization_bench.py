"""The tokenizer benchmark measures both tokenizers on both caption sets and reports their ratios."""

from __future__ import annotations

from vlp.benchmarks.tokenization import plain_captions, run_tokenization, unicode_captions
from vlp.workloads.models.catalog import load_model_cfg


def test_both_tokenizers_are_timed_on_plain_and_unicode_captions():
    report = run_tokenization(load_model_cfg("shapes-vit-micro"), captions=300, repeats=1, label="shapes-vit-micro")
    assert [(row["captions"], row["system"], row["tokenizer"]) for row in report.rows] == [
        ("plain", "open_clip", "SimpleTokenizer"), ("plain", "vlp", "CaptionTokenizer"),
        ("unicode", "open_clip", "SimpleTokenizer"), ("unicode", "vlp", "CaptionTokenizer"),
    ]
    assert all(row["first_pass_us"] > 0 and row["steady_us"] > 0 for row in report.rows)
    assert set(report.summary) == {f"{corpus}_{pass_}_speedup" for corpus in ("plain", "unicode") for pass_ in ("first_pass", "steady")}


def test_plain_captions_are_plain_and_unicode_ones_are_not():
    assert all(caption.isascii() and "&" not in caption for caption in plain_captions(500))
    assert not any(caption.isascii() for caption in unicode_captions(10))
