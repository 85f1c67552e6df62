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

    @property
    def training_lease(self) -> str:
        """Held by the one training job of this run (see vlp.platform.storage.lease)."""
        return join(self.root, "leases", "training.json")

    @property
    def resume_lease(self) -> str:
        """Held by the one `vlp run --resume` of this run."""
        return join(self.root, "leases", "resume.json")


def dataset_uri(storage_root: str, name: str) -> str:
    return join(storage_root, "datasets", name)
