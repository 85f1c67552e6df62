"""What a training loop needs from experiment tracking."""

from __future__ import annotations

from typing import Protocol


class Tracker(Protocol):
    def log_params(self, params: dict[str, str]) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Queue metrics; never blocks the training step on the network."""
        ...

    def set_tags(self, tags: dict[str, str]) -> None: ...

    def pending(self) -> list[tuple[str, float, int, int]]:
        """Metric points (key, value, timestamp ms, step) queued but not yet delivered; a checkpoint stores them."""
        ...

    def requeue(self, points: list[tuple[str, float, int, int]]) -> None:
        """Queue points from a checkpoint again; points the server already holds are not sent twice."""
        ...

    def close(self, timeout: float = 300.0) -> None:
        """Deliver everything queued (waiting for the server if needed, up to `timeout` seconds)."""
        ...


class NullTracker:
    """For ranks other than 0, and for runs without tracking."""

    def log_params(self, params: dict[str, str]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def pending(self) -> list[tuple[str, float, int, int]]:
        return []

    def requeue(self, points: list[tuple[str, float, int, int]]) -> None:
        pass

    def close(self, timeout: float = 300.0) -> None:
        pass
