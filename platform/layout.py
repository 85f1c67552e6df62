"""Where a run's objects live in storage, in one place: every step computes the same URIs from (root, run id)."""

from __future__ import annotations

from dataclasses import dataclass

from vlp.platform.storage import join


@dataclass(frozen=True)
class RunLayout:
    storage_root: str
    run_id: str

    @property
    def root(self) -> str:
        return join(self.storage_root, "runs", self.run_id)

    @property
    def spec(self) -> str:
        return join(self.root, "spec.json")

    @property
    def checkpoints(self) -> str:
        return join(self.root, "checkpoints")

    @property
    def train_summary(self) -> str:
        return join(self.root, "train-summary.json")

    @property
    def results(self) -> str:
        return join(self.root, "results")


def dataset_uri(storage_root: str, name: str) -> str:
    return join(storage_root, "datasets", name)
