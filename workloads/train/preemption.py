"""SIGTERM means "you are about to be stopped": a preempted pod, torchrun shutting its workers down, `kill`.
The trainer finishes the current step, all ranks agree to stop at the same step, a checkpoint is written and the
process exits with 143 (128 + SIGTERM) so that torchrun or the scheduler restarts it and the run resumes there.
"""

from __future__ import annotations

import signal

PREEMPTED_EXIT_CODE = 128 + signal.SIGTERM


class Preempted(Exception):
    """Raised by the trainer after the preemption checkpoint is written."""

    def __init__(self, step: int):
        super().__init__(f"stopped by SIGTERM at step {step}; the checkpoint of that step is in storage")
        self.step = step


class PreemptionWatch:
    """Records SIGTERM instead of dying on it; install in the main thread before training starts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        self.requested = True

    def close(self) -> None:
        signal.signal(signal.SIGTERM, self._previous)
