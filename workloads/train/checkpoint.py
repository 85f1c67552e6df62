"""Checkpoints in storage: `step-00000100.pt` objects plus a small `latest.json` that is switched only after
the checkpoint object is completely written, so a reader never picks up a half-written checkpoint."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import torch

from vlp.platform.storage import join, open_storage

LATEST = "latest.json"
CHECKPOINT_NAME = re.compile(r"step-(\d{8})\.pt$")


class Checkpointer:
    def __init__(self, root_uri: str, keep_last: int = 3):
        self.root_uri = root_uri
        self.keep_last = keep_last
        self.storage = open_storage(root_uri)

    def save(self, state: dict[str, Any], step: int) -> str:
        uri = join(self.root_uri, f"step-{step:08d}.pt")
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.storage.write_bytes(uri, buffer.getvalue())
        self.storage.write_bytes(join(self.root_uri, LATEST), json.dumps({"step": step, "uri": uri}).encode())
        self._prune(keep=uri)
        return uri

    def latest_uri(self) -> str | None:
        pointer = join(self.root_uri, LATEST)
        if not self.storage.exists(pointer):
            return None
        return json.loads(self.storage.read_bytes(pointer))["uri"]

    def load_latest(self) -> dict[str, Any] | None:
        uri = self.latest_uri()
        return None if uri is None else load_checkpoint(uri)

    def _prune(self, keep: str) -> None:
        checkpoints = [uri for uri in self.storage.list(self.root_uri.rstrip("/") + "/") if CHECKPOINT_NAME.search(uri)]
        for uri in checkpoints[: max(0, len(checkpoints) - self.keep_last)]:
            if uri != keep:
                self.storage.delete(uri)


def load_checkpoint(uri: str) -> dict[str, Any]:
    data = open_storage(uri).read_bytes(uri)
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
