"""Tokenizer speed: vlp's tokenizer (build_tokenizer) against open_clip's own for the same model config.

Both tokenize the same captions in batches, as a DataLoader's collate does, one torch thread. Each repeat builds
both tokenizers afresh and makes two passes: the first pays for every new word (open_clip caches BPE per word
too), the second is the steady state of a long training run. Captions are either plain English (ImageNet class
names in OpenAI's prompt templates, shuffled: what the fast path serves) or the same captions with an accented
word, which takes open_clip's full cleaning in both (the shortcut must cost nothing there).

Run: `vlp bench tokenization [--preset ViT-B-32] [--hf-tokenizer DIR] [--captions 4000]`.
"""

from __future__ import annotations

import copy
import random
import time
from typing import Any

from vlp.benchmarks.report import BenchReport, Column
from vlp.benchmarks.stats import alternating, ratio, summarize

BATCH_SIZE = 256
SYSTEMS = ("open_clip", "vlp")


def plain_captions(count: int, seed: int = 0) -> list[str]:
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

    rng = random.Random(seed)
    return [rng.choice(OPENAI_IMAGENET_TEMPLATES)(rng.choice(IMAGENET_CLASSNAMES)) for _ in range(count)]


def unicode_captions(count: int, seed: int = 0) -> list[str]:
    return [f"{caption} – café" for caption in plain_captions(count, seed)]


def tokenize_all(tokenizer, captions: list[str]) -> float:
    started = time.perf_counter()
    for start in range(0, len(captions), BATCH_SIZE):
        tokenizer(captions[start : start + BATCH_SIZE])
    return time.perf_counter() - started


def run_tokenization(model_cfg: dict[str, Any], captions: int = 4000, repeats: int = 3, label: str = "") -> BenchReport:
    import torch

    from vlp.workloads.data.tokenizers import build_tokenizer, open_clip_tokenizer

    builders = {"open_clip": open_clip_tokenizer, "vlp": build_tokenizer}
    corpora = {"plain": plain_captions(captions), "unicode": unicode_captions(captions)}
    report = BenchReport(
        name="tokenization",
        title=f"Tokenizer µs per caption, {label or 'model'} (batches of {BATCH_SIZE}, 1 thread)",
        settings={"model": label, "captions": captions, "repeats": repeats, "batch_size": BATCH_SIZE},
        columns=[
            Column("captions", "captions"), Column("system", "system"), Column("tokenizer", "tokenizer"),
            Column("first_pass_us", "first pass µs", "{:.1f}"), Column("steady_us", "steady µs", "{:.1f}"),
        ],
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for corpus_name, texts in corpora.items():
            for repeat, system in alternating(SYSTEMS, repeats):
                tokenizer = builders[system](copy.deepcopy(model_cfg))
                first, steady = tokenize_all(tokenizer, texts), tokenize_all(tokenizer, texts)
                report.runs.append({"captions": corpus_name, "system": system, "repeat": repeat, "tokenizer": type(tokenizer).__name__,
                                    "first_pass_us": first / len(texts) * 1e6, "steady_us": steady / len(texts) * 1e6})
    finally:
        torch.set_num_threads(threads)
    for corpus_name in corpora:
        medians = {}
        for system in SYSTEMS:
            runs = [run for run in report.runs if run["captions"] == corpus_name and run["system"] == system]
            medians[system] = {key: summarize([run[key] for run in runs])["median"] for key in ("first_pass_us", "steady_us")}
            report.rows.append({"captions": corpus_name, "system": system, "tokenizer": runs[0]["tokenizer"], **medians[system]})
        for key in ("first_pass_us", "steady_us"):
            report.summary[f"{corpus_name}_{key.removesuffix('_us')}_speedup"] = ratio(medians["open_clip"][key], medians["vlp"][key])
    report.notes.append("speedup = open_clip time / vlp time (median of the repeats); both give the same ids (tests/unit/workloads/test_tokenizers.py)")
    return report.finish()


def tokenizer_model_cfg(preset: str, hf_tokenizer: str = "", clean: str = "") -> tuple[dict[str, Any], str]:
    """The preset's model_cfg with an optional HF tokenizer folder and cleaning, and a label for the report."""
    from vlp.workloads.models.catalog import load_model_cfg

    model_cfg = load_model_cfg(preset)
    text_cfg = model_cfg.setdefault("text_cfg", {})
    if hf_tokenizer:
        text_cfg["hf_tokenizer_name"] = hf_tokenizer
    if clean:
        text_cfg["tokenizer_kwargs"] = {**(text_cfg.get("tokenizer_kwargs") or {}), "clean": clean}
    return model_cfg, preset + (f" + {hf_tokenizer}" if hf_tokenizer else "")
