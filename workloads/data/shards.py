"""Webdataset shards in storage: find them, and read their samples through the storage interface."""

from __future__ import annotations

import json
from typing import Any, Iterator

from vlp.platform.errors import StorageError
from vlp.platform.storage import join, open_storage
from vlp.workloads.data.tar_members import iter_tar_members


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

    Files belong to one sample while their key (the name up to the first dot of the basename) repeats,
    as webdataset groups them.
    """
    sample: dict[str, Any] = {}
    for name, content in iter_tar_members(data):
        directory, _, basename = name.rpartition("/")
        stem, dot, extension = basename.partition(".")
        if not dot or stem.startswith("__"):
            continue
        key = f"{directory}/{stem}" if directory else stem
        if sample and sample["__key__"] != key:
            yield sample
            sample = {}
        if not sample:
            sample = {"__key__": key, "__url__": shard_uri}
        sample[extension.lower()] = content
    if sample:
        yield sample
