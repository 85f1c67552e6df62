"""Checkpoints in storage, written so that a crash at any moment never leaves a half-written "latest".

Each save uploads the state under a fresh key, `step-00000100-<nonce>.pt`, that nothing refers to yet; only
when that upload has completed is the small manifest `latest.json` switched to it (one atomic PUT, or a
rename on local disk). The manifest also lists the last `keep_last` checkpoints; every other object named like
a checkpoint (older ones, and orphans of uploads a crash interrupted) is pruned after the switch.
Finding the latest checkpoint needs no torch (the pipeline's train step does it after the job). A restarted
job that saves the same step again writes a new key, so the object `latest.json` points to is never
overwritten while someone may be reading it.

What a training state holds is the trainer's business; `rng_state`/`restore_rng_state` cover the random
generators (torch, CUDA, numpy, Python) so a resumed run draws the same numbers as one that never stopped.
"""

from __future__ import annotations

import io
import json
import logging
import random
import re
import uuid
from typing import Any

from vlp.platform.storage import join, open_storage

log = logging.getLogger(__name__)

LATEST = "latest.json"
CHECKPOINT_NAME = re.compile(r"/step-(\d{8})(-[0-9a-f]{8})?\.pt$")


class Checkpointer:
    def __init__(self, root_uri: str, keep_last: int = 3):
        if keep_last < 1:
            raise ValueError("keep_last must be at least 1")
        self.root_uri = root_uri
        self.keep_last = keep_last
        self.storage = open_storage(root_uri)

    def save(self, state: dict[str, Any], step: int) -> str:
        import torch

        uri = join(self.root_uri, f"step-{step:08d}-{uuid.uuid4().hex[:8]}.pt")
        buffer = io.BytesIO()
        torch.save(state, buffer)
        # 1. The object, under a key nothing points to yet: a crash here leaves an orphan, never a bad "latest".
        self.storage.write_bytes(uri, buffer.getvalue())
        # 2. The switch: only now does a reader (a resumed job, the evaluate step) see this checkpoint.
        history = [entry for entry in self._manifest().get("history", []) if entry["step"] < step]
        kept = [*history, {"step": step, "uri": uri}][-self.keep_last:]
        manifest = {"step": step, "uri": uri, "history": kept}
        self.storage.write_bytes(join(self.root_uri, LATEST), json.dumps(manifest).encode())
        # 3. Pruning is housekeeping: a failure costs disk space, not the run.
        try:
            self._prune(keep={entry["uri"] for entry in kept})
        except Exception as err:
            log.warning("pruning old checkpoints under %s failed: %s", self.root_uri, err)
        return uri

    def latest_uri(self) -> str | None:
        manifest = self._manifest()
        return manifest.get("uri")

    def load_latest(self) -> dict[str, Any] | None:
        uri = self.latest_uri()
        return None if uri is None else load_checkpoint(uri)

    def _manifest(self) -> dict[str, Any]:
        pointer = join(self.root_uri, LATEST)
        if not self.storage.exists(pointer):
            return {}
        return json.loads(self.storage.read_bytes(pointer))

    def _prune(self, keep: set[str]) -> None:
        for uri in self.storage.list(self.root_uri.rstrip("/") + "/"):
            if CHECKPOINT_NAME.search(uri) and uri not in keep:
                self.storage.delete(uri)


def load_checkpoint(uri: str) -> dict[str, Any]:
    import torch

    data = open_storage(uri).read_bytes(uri)
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
