"""Webdataset shards in storage: find them, and read their samples through the storage interface."""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

from webdataset.tariterators import base_plus_ext

from vlp.platform.errors import StorageError
from vlp.platform.storage import join, open_storage
from vlp.workloads.data.tar_members import iter_tar_members

WEBDATASET_META = re.compile(r"__[^/]*__($|/)")  # tar_file_iterator's default skip_meta


def list_shards(dataset_uri: str) -> list[str]:
    """Every `*.tar` under a dataset directory or prefix, in name order."""
    shards = [uri for uri in open_storage(dataset_uri).list(dataset_uri.rstrip("/") + "/") if uri.endswith(".tar")]
    if not shards:
        raise StorageError(f"{dataset_uri}: no .tar shards found (expected webdataset shards such as shard-000000.tar)")
    return shards


def read_manifest(dataset_uri: str) -> dict[str, Any]:
    uri = join(dataset_uri, "manifest.json")
    storage = open_storage(uri)
    if not storage.exists(uri):
        raise StorageError(f"{uri}: missing dataset manifest (class names for evaluation are read from it)")
    return json.loads(storage.read_bytes(uri))


def iter_shard(shard_uri: str) -> Iterator[dict[str, Any]]:
    """Samples of one shard as webdataset dicts: `__key__`, `__url__` and one bytes entry per extension."""
    yield from iter_shard_bytes(shard_uri, open_storage(shard_uri).read_bytes(shard_uri))


def iter_shard_bytes(shard_uri: str, data: bytes) -> Iterator[dict[str, Any]]:
    """The samples of a shard already read into memory (reading and parsing fail differently: an outage of
    the store is not a corrupt shard).

    Grouped as webdataset groups them: a sample's key is the member's path up to the first dot of its
    basename (`laion.2b/00000/000000001.jpg` -> key `laion.2b/00000/000000001`, entry `jpg`), and files belong
    to one sample while the key repeats. Members without an extension and webdataset's `__meta__` files are
    skipped.
    """
    sample: dict[str, Any] = {}
    for name, content in iter_tar_members(data):
        if _is_webdataset_meta(name):
            continue
        key, extension = base_plus_ext(name)
        if key is None:
            continue
        if sample and sample["__key__"] != key:
            yield sample
            sample = {}
        if not sample:
            sample = {"__key__": key, "__url__": shard_uri}
        extension = extension.lower()
        if extension in sample:
            raise ValueError(f"{shard_uri}: {name!r} repeats entry {extension!r} of sample {key!r}")
        sample[extension] = content
    if sample:
        yield sample


def _is_webdataset_meta(name: str) -> bool:
    """The files `webdataset.tariterators.tar_file_iterator` skips: `__name__` at the top level, or `__dir__/...`."""
    return ("/" not in name and name.startswith("__") and name.endswith("__")) or WEBDATASET_META.match(name) is not None
