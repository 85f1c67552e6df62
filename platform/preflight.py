"""Checks that need the outside world (do the data paths exist?), run before any work starts so a mistake
costs one line and leaves nothing behind."""

from __future__ import annotations

import os

from vlp.platform.errors import SpecError
from vlp.platform.spec import ExperimentSpec
from vlp.platform.storage import open_storage

# A mistyped endpoint should cost the user seconds, not the outage budget training gets.
PREFLIGHT_RETRY_SECONDS = 10.0


def check_inputs(spec: ExperimentSpec) -> None:
    processes = spec.resources.world_size
    if spec.train.batch_size % processes:
        raise SpecError(
            f"train.batch_size {spec.train.batch_size} is not divisible by the {processes} training processes "
            f"(resources.nodes x procs_per_node); use a multiple of {processes}"
        )
    for field, uri in (("storage_root", spec.storage_root), ("data.train", spec.data.train), ("data.eval", spec.data.eval)):
        if uri:
            _check_uri(field, uri)
    if spec.storage_root:
        _check_storage_root(spec.storage_root)
    if spec.data.source != "shards":
        return
    for field, uri in (("data.train", spec.data.train), ("data.eval", spec.data.eval)):
        if uri and not _has_shards(uri):
            raise SpecError(f"{field}: no webdataset shards (*.tar) found at {uri}; check the path or run `vlp data make shapes --out {uri}`")


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

    try:
        check_uri(uri)
    except StorageError as err:
        raise SpecError(f"{field}: {err}") from None
