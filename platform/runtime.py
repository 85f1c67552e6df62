"""What a pipeline step needs to know about where it runs (from the profile), passed to every step as JSON.

It never holds credentials: steps read those from their environment (Kubernetes Secrets on the cluster).
"""

from __future__ import annotations

import subprocess

from pydantic import BaseModel, ConfigDict, Field

from vlp.platform.launch.kubernetes_pods import TrainingPodSettings


class RuntimeContext(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    storage_root: str
    """Root URI for datasets, checkpoints and results."""
    tracking_uri: str
    """MLflow tracking URI."""
    scheduler: str = "local_cwd"
    """TorchX scheduler for training steps."""
    scheduler_cfg: dict[str, str | int | bool] = Field(default_factory=dict)
    """TorchX scheduler run options (queue, namespace, ...)."""
    image: str = "vlp:local"
    """Container image of the training job (ignored by local_cwd)."""
    run_key: str = ""
    """Unique key of this submission, tagged on the MLflow run so clients can find it."""
    git_commit: str = "unknown"
    """Commit of the code that submitted the run."""
    training_pod: TrainingPodSettings = TrainingPodSettings()
    """Kubernetes settings of the training pods (ignored by local_cwd); Secret names only, never values."""


def current_git_commit() -> str:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"
