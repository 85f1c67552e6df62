"""Model and optimizer state written by every process in parts (torch.distributed.checkpoint), for `parallelism: fsdp`.

Each process writes its shards with DCP's FileSystemWriter into a local staging folder and uploads them through
vlp's storage layer (local folders and s3:// alike); process 0 also writes DCP's `.metadata`. The checkpoint's
manifest, written last by process 0 (see checkpoint.py), records every file's size and sha256. Reading downloads
the files, checks them against the manifest and lets DCP reshard them to the reader's layout, so a checkpoint
written by N processes restores on M (any M, with fsdp, ddp or a single process).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)

from vlp.platform.storage import join, open_storage
from vlp.workloads.train.distributed import gather_objects


def save_sharded(model: torch.nn.Module, optimizer: torch.optim.Optimizer, folder_uri: str) -> dict[str, dict[str, Any]]:
    """Every process writes its shards under `folder_uri`; returns (on every process) file name -> size, sha256."""
    model_state, optimizer_state = get_state_dict(model, optimizer)
    storage = open_storage(folder_uri)
    written: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="vlp-shards-") as staging:
        dcp.save({"model": model_state, "optimizer": optimizer_state}, storage_writer=dcp.FileSystemWriter(staging))
        for path in sorted(Path(staging).iterdir()):
            with open(path, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            storage.upload_file(path, join(folder_uri, path.name))
            written[path.name] = {"size": path.stat().st_size, "sha256": digest}
    # Also the barrier: no process returns (and process 0 writes no manifest) before every shard is uploaded.
    return {name: entry for per_process in gather_objects(written) for name, entry in per_process.items()}


def load_sharded(model: torch.nn.Module, optimizer: torch.optim.Optimizer, local_folder: str) -> None:
    """Load shards (downloaded and checked by the checkpointer) into this process's part of model and optimizer."""
    model_state, optimizer_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(state, storage_reader=dcp.FileSystemReader(local_folder))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])


def full_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights on process 0, in CPU memory (empty elsewhere); every process must call it."""
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_unsharded(model: torch.nn.Module, optimizer: torch.optim.Optimizer, model_state: dict, optimizer_state: dict) -> None:
    """A checkpoint of one whole state (ddp or one process) into a model of any layout, fsdp's included.

    `optimizer.state_dict()` numbers parameters in the order of its groups; DCP's state-dict API names them, so
    the numbers are translated to the names of the parameters in this optimizer's groups (built the same way).
    """
    name_of = {id(parameter): name for name, parameter in model.named_parameters()}
    names = [name_of[id(parameter)] for group in optimizer.param_groups for parameter in group["params"]]
    named_optimizer_state = {
        "state": {names[index]: value for index, value in optimizer_state["state"].items()},
        "param_groups": [{**group, "params": [names[index] for index in group["params"]]} for group in optimizer_state["param_groups"]],
    }
    set_state_dict(
        model, optimizer, model_state_dict=model_state, optim_state_dict=named_optimizer_state,
        options=StateDictOptions(full_state_dict=True),
    )
