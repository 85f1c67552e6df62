"""What a training loop needs from experiment tracking."""

from __future__ import annotations

from typing import Protocol


class Tracker(Protocol):
    def log_params(self, params: dict[str, str]) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Queue metrics; never blocks the training step on the network."""
        ...

    def set_tags(self, tags: dict[str, str]) -> None: ...

    def close(self) -> None:
        """Deliver everything queued (waiting for the server if needed, up to a limit)."""
        ...


class NullTracker:
    """For ranks other than 0, and for runs without tracking."""

    def log_params(self, params: dict[str, str]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def close(self) -> None:
        pass
