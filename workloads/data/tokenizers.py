"""The tokenizer `open_clip.get_tokenizer(name)` gives for a model, built from the `model_cfg` dict vlp stores.

open_clip decides from the config's `text_cfg`:
- `hf_tokenizer_name` set: `HFTokenizer(hf_tokenizer_name, context_length, tokenizer_mode, **tokenizer_kwargs)`
  (SigLIP's 32k/250k/256k vocabularies, the BERT, RoBERTa, XLM-R, mT5 and NLLB text towers);
- otherwise `SimpleTokenizer(context_length, **tokenizer_kwargs)` (CLIP's BPE; `clean`, `reduction_mask`,
  `additional_special_tokens`, `bpe_path`).
`context_length` is `text_cfg.context_length`, else 77. open_clip's one other branch, SigLipTokenizer for a
config *named* "*siglip*" without `hf_tokenizer_name`, cannot be reached from a config dict; every SigLIP
config open_clip ships names its tokenizer.

`build_tokenizer` returns that tokenizer with vlp's shortcuts, which give the same ids (caption_tokens.py);
`open_clip_tokenizer` returns open_clip's object as it is (the reference for tests and benchmarks).

HF tokenizers come from a local directory or the Hugging Face cache, and are downloaded only when neither has
them and the hub is not switched off (HF_HUB_OFFLINE=1). Swap in your own tokenizer by passing any callable
`list[str] -> LongTensor[N, context_length]` with a `context_length` attribute where a `BuiltModel` is made.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Callable

import torch

from vlp.platform.errors import SpecError

__all__ = ["Tokenizer", "build_tokenizer", "open_clip_tokenizer", "text_context_length"]

Tokenizer = Callable[[list[str]], torch.Tensor]

SIMPLE_TOKENIZER_OPTIONS = {"clean", "reduction_mask", "additional_special_tokens", "bpe_path"}
CLEAN_KINDS = ("lower", "whitespace", "canonicalize")
REDUCTION_MASKS = ("", "simple", "random", "shuffle", "syntax")
FIELD = "model text_cfg"


def text_context_length(model_cfg: dict[str, Any]) -> int:
    from open_clip.tokenizer import DEFAULT_CONTEXT_LENGTH

    return model_cfg.get("text_cfg", {}).get("context_length", DEFAULT_CONTEXT_LENGTH)


def build_tokenizer(model_cfg: dict[str, Any]) -> Tokenizer:
    """open_clip's tokenizer for `model_cfg`, with the word cache and cleaning shortcut where they apply."""
    from open_clip.tokenizer import HFTokenizer, SimpleTokenizer

    from vlp.workloads.data.caption_tokens import CaptionTokenizer, SkipUnneededCleaning

    tokenizer = open_clip_tokenizer(model_cfg)
    if isinstance(tokenizer, SimpleTokenizer):
        return CaptionTokenizer(tokenizer)
    if isinstance(tokenizer, HFTokenizer):
        # HFTokenizer calls self.clean_fn on each caption before the (already fast) HF tokenizer.
        tokenizer.clean_fn = SkipUnneededCleaning(tokenizer.clean_fn)
    return tokenizer


def open_clip_tokenizer(model_cfg: dict[str, Any]):
    """Exactly what `open_clip.get_tokenizer` builds for a built-in config equal to `model_cfg`."""
    text_cfg = model_cfg.get("text_cfg", {})
    context_length = text_context_length(model_cfg)
    options = dict(text_cfg.get("tokenizer_kwargs") or {})
    hf_name = text_cfg.get("hf_tokenizer_name", "")
    if hf_name:
        return _hf_tokenizer(str(hf_name), context_length, text_cfg.get("tokenizer_mode"), options)
    return _simple_tokenizer(context_length, options)


def _check_clean(options: dict[str, Any]) -> None:
    if "clean" in options and options["clean"] not in CLEAN_KINDS:
        raise SpecError(f"{FIELD}.tokenizer_kwargs.clean: {options['clean']!r} is not one of {', '.join(CLEAN_KINDS)}")


def _simple_tokenizer(context_length: int, options: dict[str, Any]):
    from open_clip.tokenizer import SimpleTokenizer

    unknown = sorted(set(options) - SIMPLE_TOKENIZER_OPTIONS)
    if unknown:
        raise SpecError(f"{FIELD}.tokenizer_kwargs: unknown option(s) {', '.join(unknown)} for CLIP's tokenizer (known: {', '.join(sorted(SIMPLE_TOKENIZER_OPTIONS))})")
    _check_clean(options)
    if options.get("reduction_mask", "") not in REDUCTION_MASKS:
        raise SpecError(f"{FIELD}.tokenizer_kwargs.reduction_mask: {options['reduction_mask']!r} is not one of {', '.join(m or repr(m) for m in REDUCTION_MASKS)}")
    if options.get("reduction_mask") == "syntax" and importlib.util.find_spec("nltk") is None:
        raise SpecError(f"{FIELD}.tokenizer_kwargs.reduction_mask: 'syntax' needs the nltk package (pip install nltk) and its punkt and averaged_perceptron_tagger data")
    if "bpe_path" in options and not Path(options["bpe_path"]).is_file():
        raise SpecError(f"{FIELD}.tokenizer_kwargs.bpe_path: {options['bpe_path']} is not a file; give the path of a gzipped BPE merges file")
    return SimpleTokenizer(context_length=context_length, **options)


def _hf_tokenizer(name: str, context_length: int, mode: str | None, options: dict[str, Any]):
    try:
        import transformers  # noqa: F401  (open_clip imports it inside HFTokenizer)
    except ImportError:
        raise SpecError(f"{FIELD}.hf_tokenizer_name: {name!r} is a Hugging Face tokenizer and needs the transformers package: pip install transformers") from None
    from huggingface_hub import constants
    from open_clip.tokenizer import HFTokenizer

    _check_clean(options)
    looks_like_path = name.startswith((".", "/", "~")) or Path(name).expanduser().exists()
    if looks_like_path and not Path(name).expanduser().is_dir():
        raise SpecError(f"{FIELD}.hf_tokenizer_name: {name} is not a directory; give a folder holding tokenizer.json (or the tokenizer's vocabulary files) or a Hugging Face hub id")

    def load(**hub_options):
        return HFTokenizer(str(Path(name).expanduser()) if looks_like_path else name, context_length=context_length, tokenizer_mode=mode, **options, **hub_options)

    # The cache first: without a network an uncached download retries for about a minute before failing.
    try:
        return load(local_files_only=True)
    except (OSError, ValueError) as err:
        if looks_like_path or constants.is_offline_mode() or not isinstance(err, OSError):
            raise SpecError(_unavailable(name, looks_like_path, err)) from None
    try:
        return load()
    except (OSError, ValueError) as err:
        raise SpecError(_unavailable(name, looks_like_path, err)) from None


def _unavailable(name: str, local: bool, err: Exception) -> str:
    if local:
        return f"{FIELD}.hf_tokenizer_name: the folder {name} holds no tokenizer transformers can load; save one there with tokenizer.save_pretrained({name!r})"
    if not isinstance(err, OSError):
        return f"{FIELD}.hf_tokenizer_name: cannot load tokenizer {name!r}: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
    return (
        f"{FIELD}.hf_tokenizer_name: tokenizer {name!r} is neither in the Hugging Face cache nor downloadable here; "
        f"on a machine with network run `hf download {name} --include '*.json' '*.txt' '*.model'` and copy the cache (HF_HOME) here, "
        "or set hf_tokenizer_name to a folder holding those tokenizer files"
    )
