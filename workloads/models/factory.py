"""Build a model, its tokenizer and its image transform from the `model:` section.

The section is turned into one JSON-able `model_cfg`: open_clip's own config (towers as data, from a preset, an
open_clip config name or the checkpoint in `init_from`) plus a `vlp` entry with what open_clip does not know
(architecture, pooling, sharing, CoCa/PACL settings). A plain `clip` has no `vlp` entry, so its `model_cfg` and
checkpoint are open_clip's. Checkpoints store this `model_cfg`, and `build_model_from_cfg` rebuilds any of them.

Architectures are found by name in ARCHITECTURES (module path, imported on first use; each module has
`build(model_cfg) -> nn.Module`). Swap in your own by adding a module there, or build the model yourself and hand
it to the trainer: nothing below is global state.
"""

from __future__ import annotations

import copy
import importlib
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from vlp.platform.errors import SpecError
from vlp.platform.spec.model import ARCH_OPTIONS, STARTS_FROM_CLIP, ModelSection
from vlp.workloads.data.image_transforms import ImagePreprocess
from vlp.workloads.models.catalog import load_model_cfg
from vlp.workloads.models.tying import count_parameters, count_shared_parameters

__all__ = ["ARCHITECTURES", "BuiltModel", "build_model", "build_model_from_cfg", "compose_model_cfg", "count_parameters", "count_shared_parameters"]

ARCHITECTURES = {
    "clip": "vlp.workloads.models.clip",
    "msclip": "vlp.workloads.models.msclip",
    "multiway": "vlp.workloads.models.multiway",
    "coca": "vlp.workloads.models.coca",
    "pacl": "vlp.workloads.models.pacl",
    "fusion": "vlp.workloads.models.fusion",
    "flava": "vlp.workloads.models.flava",
    "transvg": "vlp.workloads.models.transvg",
    "video": "vlp.workloads.models.video",
}
# SigLIP's initial temperature and bias (as in open_clip's SigLIP configs).
SIGLIP_INIT_LOGIT_SCALE = math.log(10.0)
SIGLIP_INIT_LOGIT_BIAS = -10.0


@dataclass(frozen=True)
class BuiltModel:
    model: torch.nn.Module
    model_cfg: dict[str, Any]
    tokenizer: Callable[[list[str]], torch.Tensor]
    preprocess: ImagePreprocess
    """The image preprocessing open_clip uses for this config (size, mean/std, resize mode, interpolation)."""

    @property
    def image_size(self) -> int:
        return self.preprocess.size[0]

    @property
    def arch(self) -> str:
        return self.model_cfg.get("vlp", {}).get("arch", "clip")


def build_model(section: ModelSection, contrastive: str = "infonce", tracking_uri: str | None = None) -> BuiltModel:
    """The model for training: architecture from the section, weights from `init_from`, frozen parts frozen."""
    from vlp.workloads.models.weights import load_weights, resolve_weights

    weights = resolve_weights(section.init_from, tracking_uri)
    base_cfg = weights.model_cfg if weights is not None and weights.model_cfg is not None else load_model_cfg(section.preset)
    source_arch = base_cfg.get("vlp", {}).get("arch", "clip")
    if weights is not None and source_arch != section.arch and not (section.arch in STARTS_FROM_CLIP and source_arch == "clip"):
        raise SpecError(f"model.init_from: {weights.source} holds a {source_arch} model; model.arch is {section.arch}")
    built = build_model_from_cfg(compose_model_cfg(section, base_cfg, contrastive))
    if weights is not None:
        load_weights(built.model, weights, section.arch)
    freeze_untrained(built.model, section)
    return built


def compose_model_cfg(section: ModelSection, base_cfg: dict[str, Any], contrastive: str = "infonce") -> dict[str, Any]:
    """open_clip config + the section's choices -> the full `model_cfg` that checkpoints store."""
    from vlp.workloads.models.vision_tower import is_vit_cfg

    cfg = copy.deepcopy({key: value for key, value in base_cfg.items() if key != "vlp"})
    if contrastive == "siglip":
        cfg.setdefault("init_logit_scale", SIGLIP_INIT_LOGIT_SCALE)
        cfg.setdefault("init_logit_bias", SIGLIP_INIT_LOGIT_BIAS)
    if section.preprocess is not None:
        cfg["preprocess_cfg"] = {**cfg.get("preprocess_cfg", {}), **section.preprocess.model_dump(exclude_none=True)}
    vit = is_vit_cfg(cfg["vision_cfg"])
    if vit and section.pooling in ("cls", "mean"):
        cfg["vision_cfg"]["pool_type"] = "tok" if section.pooling == "cls" else "avg"
    options: dict[str, Any] = {"arch": section.arch, "pooling": section.pooling}
    if section.pooling == "ggem":
        options["ggem"] = section.ggem.model_dump()
    if section.early_specialization:
        options["early_specialization"] = True
    if section.aux_adapter.enabled:
        options["aux_adapter"] = {"layers": list(section.aux_adapter.layers), "channels": section.aux_adapter.channels}
    if section.arch in ("msclip", "multiway"):
        options["share_from_layer"] = section.shared_from_layer
    if section.arch == "coca":
        options["coca"] = {"decoder_layers": section.coca.decoder_layers}
    if section.arch == "pacl":
        options["pacl"] = {"embedder_hidden": section.pacl.embedder_hidden, "patch_temperature": section.pacl.patch_temperature}
    for name in ("fusion", "masked_modeling", "transvg", "video"):
        if section.arch in ARCH_OPTIONS[name] and (name != "masked_modeling" or section.arch != "multiway" or section.masked_modeling.enabled):
            options[name] = getattr(section, name).model_dump(mode="json")
    open_clip_native = section.arch == "clip" and set(options) == {"arch", "pooling"} and (section.pooling == "cls" or vit)
    if not open_clip_native:
        cfg["vlp"] = options
    return cfg


def build_model_from_cfg(model_cfg: dict[str, Any]) -> BuiltModel:
    """Model, tokenizer and image preprocessing from a `model_cfg`; an optional `preprocess_cfg` entry (open_clip's
    PreprocessCfg fields, as in `open_clip_config.json`) sets the preprocessing, open_clip's defaults otherwise."""
    from vlp.workloads.data.tokenizers import build_tokenizer

    arch = model_cfg.get("vlp", {}).get("arch", "clip")
    if arch not in ARCHITECTURES:
        raise SpecError(f"model.arch: unknown architecture {arch!r} (known: {', '.join(ARCHITECTURES)})")
    try:
        preprocess = ImagePreprocess.from_model_cfg(model_cfg)
        towers_cfg = {key: value for key, value in model_cfg.items() if key != "preprocess_cfg"}
        model = importlib.import_module(ARCHITECTURES[arch]).build(copy.deepcopy(towers_cfg))
    except ValueError as err:
        raise SpecError(f"model: {err}") from None
    return BuiltModel(
        model=model,
        model_cfg=model_cfg,
        tokenizer=build_tokenizer(model_cfg),
        preprocess=preprocess,
    )


def freeze_untrained(model: torch.nn.Module, section: ModelSection) -> None:
    """Freeze what the section says is fixed, and what no loss term reaches (DDP would wait for its gradient)."""
    if section.arch != "pacl":
        return
    if section.pacl.freeze_backbone:
        for parameter in model.backbone.parameters():
            parameter.requires_grad_(False)
        # The temperature (and SigLIP bias) belong to the new head's scores and keep training.
        model.backbone.logit_scale.requires_grad_(True)
        if model.backbone.logit_bias is not None:
            model.backbone.logit_bias.requires_grad_(True)
    if section.pacl.global_loss_weight == 0:
        for parameter in getattr(model.backbone.visual, "pool", torch.nn.Module()).parameters():
            parameter.requires_grad_(False)
