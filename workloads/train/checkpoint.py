"""Checkpoints in storage, written so that a crash at any moment never leaves a half-written "latest".

Each save uploads the state under a fresh key, `step-00000100-<nonce>.pt`, that nothing refers to yet; only
when that upload has completed is the small manifest `latest.json` switched to it (one atomic PUT, or a
rename on local disk). The manifest also lists the last `keep_last` checkpoints; every other object named like
a checkpoint (older ones, and orphans of uploads a crash interrupted) is pruned after the switch.
Finding the latest checkpoint needs no torch (the pipeline's train step does it after the job). A restarted
job that saves the same step again writes a new key, so the object `latest.json` points to is never
overwritten while someone may be reading it.

Each manifest entry records the object's size and sha256. `restore` checks them (and that torch can read the
object) before trusting a checkpoint; one that fails falls back to the previous entry of the history, and the
caller learns which were skipped and why; `load_checkpoint(uri)` checks the one object it is given against the
manifest beside it and raises instead. Files saved `beside` a checkpoint (the open_clip export) go into a
folder named after it, `step-00000100-<nonce>/`, written before the switch and pruned with it.

A sharded checkpoint (`parallelism: fsdp`, see sharded_state.py) keeps its model and optimizer shards in that
folder too, written by every process before process 0 switches the manifest; the entry's `shards` lists each
file's size and sha256, and `restore` downloads and checks them like the object itself (a checkpoint whose shards
fail falls back like one whose object does). The object then holds the rest of the training state and the
gathered model weights, so evaluation and export read every checkpoint the same way.

What a training state holds is the trainer's business; `rng_state`/`restore_rng_state` cover the random
generators (torch, CUDA, numpy, Python) so a resumed run draws the same numbers as one that never stopped.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import random
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlp.platform.errors import StorageError
from vlp.platform.storage import is_s3, join, open_storage

log = logging.getLogger(__name__)

LATEST = "latest.json"
CHECKPOINT_NAME = re.compile(r"/step-(\d{8})(-[0-9a-f]{8})?\.pt$")
BESIDE_NAME = re.compile(r"^(.*/step-\d{8}(?:-[0-9a-f]{8})?)/[^/]+$")


class CheckpointError(StorageError):
    """No checkpoint of the history passed its check."""


@dataclass(frozen=True)
class RestoredCheckpoint:
    state: dict[str, Any]
    entry: dict[str, Any]
    """The manifest entry restored: step, uri, size, sha256."""
    skipped: list[str]
    """`uri: reason` for each newer checkpoint that failed its check (empty when the latest was sound)."""
    shards: str | None = None
    """A local folder holding the checked shards of a sharded checkpoint (the caller loads and removes it)."""


class Checkpointer:
    def __init__(self, root_uri: str, keep_last: int = 3):
        if keep_last < 1:
            raise ValueError("keep_last must be at least 1")
        self.root_uri = root_uri
        self.keep_last = keep_last
        self.storage = open_storage(root_uri)

    @staticmethod
    def new_name(step: int) -> str:
        """A fresh name for the checkpoint of `step` (sharded saves agree on it before writing their shards)."""
        return f"step-{step:08d}-{uuid.uuid4().hex[:8]}"

    def folder(self, name: str) -> str:
        """The folder of the checkpoint `name`: files beside it and its shards."""
        return join(self.root_uri, name)

    def save(
        self, state: dict[str, Any], step: int, beside: dict[str, bytes] | None = None,
        shards: dict[str, dict[str, Any]] | None = None, name: str | None = None,
    ) -> str:
        """Write the state (and `beside`: file name -> bytes, into the checkpoint's own folder); returns its URI.

        `shards` (file name -> size, sha256) were already written into `folder(name)` by every process."""
        import torch

        name = name or self.new_name(step)
        uri = join(self.root_uri, f"{name}.pt")
        # Serialised to a local file and streamed from there: in memory the bytes would add the state's size again
        # to the process's peak (1.8 GB for ViT-B-32 with AdamW).
        with tempfile.TemporaryDirectory(prefix="vlp-checkpoint-") as staging:
            staged = Path(staging) / f"{name}.pt"
            torch.save(state, staged)
            with open(staged, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            size = staged.stat().st_size
            # 1. The objects, under keys nothing points to yet: a crash here leaves orphans, never a bad "latest".
            self.storage.upload_file(staged, uri)
        entry: dict[str, Any] = {"step": step, "uri": uri, "size": size, "sha256": digest}
        if beside or shards:
            folder = self.folder(name)
            for filename, content in (beside or {}).items():
                self.storage.write_bytes(join(folder, filename), content)
            entry["beside"] = folder
        if shards:
            entry["shards"] = shards
        # 2. The switch: only now does a reader (a resumed job, the evaluate step) see this checkpoint.
        history = [old for old in self._manifest().get("history", []) if old["step"] < step]
        kept = [*history, entry][-self.keep_last:]
        manifest = {**entry, "history": kept}
        self.storage.write_bytes(join(self.root_uri, LATEST), json.dumps(manifest).encode())
        # 3. Pruning is housekeeping: a failure costs disk space, not the run.
        try:
            self._prune(keep={old["uri"] for old in kept})
        except Exception as err:
            log.warning("pruning old checkpoints under %s failed: %s", self.root_uri, err)
        return uri

    def latest_uri(self) -> str | None:
        manifest = self._manifest()
        return manifest.get("uri")

    def load_latest(self) -> dict[str, Any] | None:
        restored = self.restore()
        return None if restored is None else restored.state

    def restore(self) -> RestoredCheckpoint | None:
        """The newest checkpoint that passes its check, newest first through the history; None before any save.

        Raises CheckpointError when none does. A storage outage is not a failed check: it propagates, so a
        resume never silently goes back to an older checkpoint because S3 was briefly away.
        """
        manifest = self._manifest()
        if "uri" not in manifest:
            return None
        newest_first = [manifest, *reversed(manifest.get("history", []))]
        skipped: list[str] = []
        seen: set[str] = set()
        for entry in newest_first:
            if entry["uri"] in seen:
                continue
            seen.add(entry["uri"])
            try:
                state = read_checked(entry)
                shards = fetch_shards(entry) if "shards" in entry else None
            except CheckpointError as err:
                skipped.append(str(err))
                log.warning("checkpoint skipped: %s", err)
                continue
            if skipped:
                log.warning("restored the checkpoint of step %d instead of the latest", entry["step"])
            return RestoredCheckpoint(state, entry, skipped, shards)
        raise CheckpointError(
            f"{self.root_uri}: no checkpoint passes its check ({'; '.join(skipped)}); "
            f"delete {join(self.root_uri, LATEST)} to start this run from scratch"
        )

    def _manifest(self) -> dict[str, Any]:
        pointer = join(self.root_uri, LATEST)
        if not self.storage.exists(pointer):
            return {}
        return json.loads(self.storage.read_bytes(pointer))

    def _prune(self, keep: set[str]) -> None:
        kept_folders = {uri.removesuffix(".pt") for uri in keep}
        emptied: set[str] = set()
        for uri in self.storage.list(self.root_uri.rstrip("/") + "/"):
            if CHECKPOINT_NAME.search(uri) and uri not in keep:
                self.storage.delete(uri)
            elif (beside := BESIDE_NAME.match(uri)) and beside.group(1) not in kept_folders:
                self.storage.delete(uri)
                emptied.add(beside.group(1))
        if not is_s3(self.root_uri):  # S3 has no folders; a local one would stay behind empty
            for folder in emptied:
                Path(folder).rmdir()


def checkpoint_problem(entry: dict[str, Any], data: bytes) -> str | None:
    """Why `data` is not the object the manifest entry recorded (None if it is, or the entry predates digests)."""
    if "size" in entry and len(data) != entry["size"]:
        return f"{len(data)} bytes, the manifest recorded {entry['size']}"
    if "sha256" in entry and hashlib.sha256(data).hexdigest() != entry["sha256"]:
        return "sha256 differs from the manifest's"
    return None


def read_checked(entry: dict[str, Any]) -> dict[str, Any]:
    """Read and unpickle the checkpoint of a manifest entry; CheckpointError names it and what is wrong."""
    uri = entry["uri"]
    try:
        data = open_storage(uri).read_bytes(uri)
    except StorageError as err:  # the object is gone; the message names it
        raise CheckpointError(str(err)) from None
    problem = checkpoint_problem(entry, data)
    if problem is not None:
        raise CheckpointError(f"{uri}: {problem}")
    try:
        return _unpickle(data)
    except Exception as err:
        raise CheckpointError(f"{uri}: unreadable ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None


def fetch_shards(entry: dict[str, Any]) -> str:
    """Download a sharded checkpoint's shards into a new local folder, each checked against the manifest."""
    folder = tempfile.mkdtemp(prefix="vlp-restore-")
    try:
        for filename, recorded in entry["shards"].items():
            uri = join(entry["beside"], filename)
            try:
                data = open_storage(uri).read_bytes(uri)
            except StorageError as err:
                raise CheckpointError(str(err)) from None
            problem = checkpoint_problem(recorded, data)
            if problem is not None:
                raise CheckpointError(f"{uri}: {problem}")
            (Path(folder) / filename).write_bytes(data)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def load_checkpoint(uri: str) -> dict[str, Any]:
    """One checkpoint by URI, checked against the size and digest its folder's manifest records for it (if any)."""
    entry = _manifest_entry(uri)
    return _unpickle(open_storage(uri).read_bytes(uri)) if entry is None else read_checked(entry)


def _manifest_entry(uri: str) -> dict[str, Any] | None:
    pointer = join(uri.rsplit("/", 1)[0], LATEST)
    storage = open_storage(pointer)
    if not storage.exists(pointer):
        return None
    manifest = json.loads(storage.read_bytes(pointer))
    return next((entry for entry in [manifest, *manifest.get("history", [])] if entry.get("uri") == uri), None)


def _unpickle(data: bytes) -> dict[str, Any]:
    import torch

    # weights_only: a checkpoint is data; unpickling arbitrary objects from storage would run arbitrary code.
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def rng_state() -> dict[str, Any]:
    """Every random generator a training step may draw from, in a form `torch.load(weights_only=True)` accepts."""
    import numpy as np
    import torch

    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["position"], numpy["has_gauss"], numpy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
