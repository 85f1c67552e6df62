"""Profiles say where an experiment runs. `local` is built in: everything under the state directory."""

from __future__ import annotations

import uuid

from vlp.platform.runtime import RuntimeContext, current_git_commit
from vlp.platform.state import default_storage_root, default_tracking_uri


def local_runtime() -> RuntimeContext:
    return RuntimeContext(
        storage_root=default_storage_root(),
        tracking_uri=default_tracking_uri(),
        scheduler="local_cwd",
        run_key=uuid.uuid4().hex,
        git_commit=current_git_commit(),
    )
