"""Where vlp keeps its local state: the MLflow store, artifacts and the local storage root.

Everything lives under one directory, `.vlp/` in the current directory unless `VLP_HOME` says
otherwise, so a project is self-contained and a test can point vlp at a temporary directory.
"""

from __future__ import annotations

import os
from pathlib import Path


def vlp_home() -> Path:
    return Path(os.environ.get("VLP_HOME") or Path.cwd() / ".vlp").absolute()


def default_tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` wins; otherwise a SQLite store under the state directory."""
    explicit = os.environ.get("MLFLOW_TRACKING_URI")
    if explicit:
        return explicit
    return f"sqlite:///{vlp_home() / 'mlflow.db'}"


def default_artifact_root() -> str:
    return (vlp_home() / "mlartifacts").as_uri()


def default_storage_root() -> str:
    return str(vlp_home() / "storage")
