"""What a pipeline step needs to know about where it runs (from the profile), passed to every step as JSON.

It never holds credentials: steps read those from their environment (Kubernetes Secrets on the cluster).
"""

from __future__ import annotations

import subprocess

from pydantic import BaseModel, ConfigDict, Field

from vlp.platform.launch.kubernetes_pods import TrainingPodSettings


class WorkspaceRef(BaseModel):
    """The researcher's working tree as `vlp submit` shipped it (see `vlp.platform.workspace`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str
    """Storage URI of the wheel every step and worker installs over the image's vlp."""
    content_sha256: str
    """sha256 of the shipped files (paths and contents): what the installed vlp reports."""
    wheel_sha256: str
    """sha256 of the wheel, checked by every pod before it installs it."""
    git_commit: str
    """HEAD of the checkout it was shipped from."""
    dirty: bool
    """Whether the shipped files differed from HEAD (uncommitted or untracked changes)."""


class SweepTrialRef(BaseModel):
    """The sweep a run is one trial of (set by the sweep pipeline's sweep-trial step)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parent_run_id: str
    """The sweep's parent MLflow run: the trial's run is its child (`mlflow.parentRunId`)."""
    number: int
    """The trial's number, from 1 in the sweep's order."""


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
    workspace: WorkspaceRef | None = None
    """The shipped working tree the pods run (None: the image's vlp as it is, or a local run)."""
    training_pod: TrainingPodSettings = TrainingPodSettings()
    """Kubernetes settings of the training pods (ignored by local_cwd); Secret names only, never values."""
    sweep_trial: SweepTrialRef | None = None
    """Set when this run is one trial of a sweep."""


def current_git_commit() -> str:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"
