"""One preflight for `vlp run` and `vlp submit`: every check that can fail before any work starts, so a
mistake costs one line and leaves nothing behind (no MLflow run, no pipeline, no job).

Both commands check the spec against itself (the batch divides over the processes, the model builds on the
meta device). Then `vlp run` checks its inputs exist on this machine or its S3, and `vlp submit` checks that
every path is one the cluster's pods can reach (no local paths, no local storage root) and that the job makes
sense on the profile's nodes (see `vlp.platform.cluster_checks`). `submit` contacts nothing here: the pods
read S3 with the cluster's credentials, not yours.
"""

from __future__ import annotations

import os

from vlp.platform.errors import SpecError
from vlp.platform.spec import ExperimentSpec
from vlp.platform.storage import open_storage

# A mistyped endpoint should cost the user seconds, not the outage budget training gets.
PREFLIGHT_RETRY_SECONDS = 10.0
# Schemes a cluster pod can read (models:/ through the MLflow server).
CLUSTER_SCHEMES = ("s3://", "models:/")


def check_experiment(spec: ExperimentSpec, profile=None) -> None:
    """Every check before `vlp run` (profile None) or `vlp submit --profile` (a `ClusterProfile`) starts work."""
    check_batch(spec)
    for field, uri in uri_fields(spec).items():
        _check_uri(field, uri)
    if profile is not None:
        check_reachable_from_cluster(spec, profile.name)
    check_model(spec)
    if profile is None:
        check_inputs(spec)
        return
    from vlp.platform.cluster_checks import check_job_on_profile

    check_job_on_profile(spec, profile)


def check_batch(spec: ExperimentSpec) -> None:
    spec.train.per_process_batch(spec.resources.world_size)


def check_model(spec: ExperimentSpec) -> None:
    """The model section builds (on the meta device: no memory, no weights read); an unknown preset, a bad option or
    missing weights would otherwise fail inside the training job, after the run opened."""
    section = spec.model
    if section.init_from is None:
        _build_on_meta_device(spec)
    elif isinstance(section.init_from, str) and not section.init_from.startswith("models:/"):
        if not _is_remote(section.init_from) and not open_storage(section.init_from).exists(section.init_from):
            raise SpecError(f"model.init_from: no checkpoint at {section.init_from}; check the path (or use models:/NAME@ALIAS)")
    if spec.workload == "pretrain":
        # Objectives hold no weights: building one catches the terms an architecture cannot serve.
        from vlp.workloads.objectives.factory import build_objective

        build_objective(spec.objective, section)


def _build_on_meta_device(spec: ExperimentSpec) -> None:
    import torch

    from vlp.workloads.models.catalog import load_model_cfg
    from vlp.workloads.models.factory import build_model_from_cfg, compose_model_cfg

    model_cfg = compose_model_cfg(spec.model, load_model_cfg(spec.model.preset), spec.objective.contrastive)
    from vlp.workloads.train.accumulation import check_accumulable

    try:
        with torch.device("meta"):
            built = build_model_from_cfg(model_cfg)
    except SpecError:
        raise
    except Exception as err:  # a shape or option the towers refuse
        raise SpecError(f"model: preset {spec.model.preset} with arch {spec.model.arch} does not build: {type(err).__name__}: {str(err).splitlines()[0][:200]}") from None
    check_accumulable(built.model, spec.train.accum_steps, built.arch)


def uri_fields(spec: ExperimentSpec) -> dict[str, str]:
    """{field: value} of every field that names data or weights to read, or a place to write."""
    fields = {
        "storage_root": spec.storage_root, "data.train": spec.data.train, "data.eval": spec.data.eval,
        "dg.root": spec.dg.root, "dg.pretrained_checkpoint": spec.dg.pretrained_checkpoint,
    }
    init_from = spec.model.init_from
    if isinstance(init_from, str):
        fields["model.init_from"] = init_from
    elif init_from is not None and init_from.checkpoint:
        fields["model.init_from.checkpoint"] = init_from.checkpoint
    if spec.dg.pretrained and _looks_like_a_path(spec.dg.pretrained):
        fields["dg.pretrained"] = spec.dg.pretrained
    return {field: value for field, value in fields.items() if value}


def check_reachable_from_cluster(spec: ExperimentSpec, profile_name: str) -> None:
    """A path on this machine means nothing in a pod: refuse it, naming the field. Besides the known URI fields, any
    value anywhere in the spec that is an absolute or home path (fields other issues add) is refused too."""
    local = {field: value for field, value in uri_fields(spec).items() if not value.startswith(CLUSTER_SCHEMES)}
    local.update(_paths_anywhere(spec.model_dump(mode="json", by_alias=True)))
    for field, value in sorted(local.items()):
        where = "the profile's storage_root" if field == "storage_root" else "s3:// (upload it first, e.g. `aws s3 sync`)"
        raise SpecError(
            f"{field}: {value} is a path on this machine, which pods of profile {profile_name} cannot read; "
            f"use {where}" + (" or remove the field" if field == "storage_root" else "")
        )


def _paths_anywhere(document, location: str = "") -> dict[str, str]:
    found: dict[str, str] = {}
    if isinstance(document, dict):
        for key, value in document.items():
            found.update(_paths_anywhere(value, f"{location}.{key}" if location else str(key)))
    elif isinstance(document, (list, tuple)):
        for index, value in enumerate(document):
            found.update(_paths_anywhere(value, f"{location}[{index}]"))
    elif isinstance(document, str) and document.startswith(("/", "~", "file:", "./", "../")):
        found[location] = document
    return found


def _looks_like_a_path(value: str) -> bool:
    return "/" in value or value.startswith(("~", "."))


def _is_remote(uri: str) -> bool:
    return uri.startswith(("s3://", "http://", "https://"))


def check_inputs(spec: ExperimentSpec) -> None:
    """`vlp run`: the storage root can be written and the shards are there."""
    if spec.storage_root:
        _check_storage_root(spec.storage_root)
    if spec.data.source != "shards":
        return
    for field, uri in (("data.train", spec.data.train), ("data.eval", spec.data.eval)):
        if uri and not _has_shards(uri):
            raise SpecError(f"{field}: no webdataset shards (*.tar) found at {uri}; check the path or run `vlp data make shapes --out {uri}`")
    if spec.workload == "pretrain":
        from vlp.workloads.data.sample_decoders import check_training_samples
        from vlp.workloads.data.shards import list_shards

        check_training_samples(spec.model.arch, list_shards(spec.data.train)[0])


def _has_shards(uri: str) -> bool:
    try:
        return any(item.endswith(".tar") for item in open_storage(uri, PREFLIGHT_RETRY_SECONDS).list(uri.rstrip("/") + "/"))
    except Exception as err:  # unreachable endpoint, no bucket, no permission: say so on the field
        raise SpecError(f"cannot list {uri}: {type(err).__name__}: {str(err).splitlines()[0][:200]}") from None


def _check_storage_root(root: str) -> None:
    """A storage root that cannot be written fails here, before an MLflow run is opened for it."""
    from pathlib import Path

    from vlp.platform.storage import is_s3

    if is_s3(root):
        try:
            next(iter(open_storage(root, PREFLIGHT_RETRY_SECONDS).list(root.rstrip("/") + "/")), None)
        except Exception as err:
            raise SpecError(f"storage_root: cannot list {root}: {type(err).__name__}: {str(err).splitlines()[0][:200]}") from None
        return
    path = Path(root)
    existing = next(parent for parent in (path, *path.parents) if parent.exists())
    if not existing.is_dir():
        raise SpecError(f"storage_root: {existing} is a file, not a directory; point storage_root at a directory")
    if not os.access(existing, os.W_OK):
        raise SpecError(f"storage_root: {existing} is not writable; choose a directory you can write to")


def _check_uri(field: str, uri: str) -> None:
    """Malformed URIs (and credentials in them) are refused before they are used or echoed in a message."""
    from vlp.platform.errors import StorageError
    from vlp.platform.storage.uris import check_uri

    if uri.startswith("models:/"):
        return
    try:
        check_uri(uri)
    except StorageError as err:
        raise SpecError(f"{field}: {err}") from None
