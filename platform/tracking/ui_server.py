"""Where `vlp ui` serves the local store, so read-only commands can ask its REST API instead of opening the SQLite
store themselves: MLflow's client and its SQL store take over a second to import, a request to the running server a
few milliseconds. `vlp ui` records itself in `$VLP_HOME/ui.json`; a record whose process is gone, that serves
another store, or whose server does not answer at once is ignored (the caller opens the store as before)."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

from vlp.platform.state import vlp_home

RECORD = "ui.json"
HEALTH_TIMEOUT_SECONDS = 2.0


def record_path() -> Path:
    return vlp_home() / RECORD


def record_ui(url: str, tracking_uri: str, pid: int | None = None) -> None:
    """Called by `vlp ui` just before it becomes the MLflow server (same process id across exec)."""
    from vlp.platform.storage.local import LocalStorage

    document = {"pid": pid or os.getpid(), "url": url, "tracking_uri": tracking_uri}
    LocalStorage().write_bytes(str(record_path()), json.dumps(document).encode())


def serving_url(tracking_uri: str) -> str | None:
    """The URL of a live `vlp ui` over `tracking_uri`, or None."""
    try:
        document = json.loads(record_path().read_text())
    except (OSError, ValueError):
        return None
    if document.get("tracking_uri") != tracking_uri or not _alive(document.get("pid")):
        return None
    url = document.get("url", "")
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=HEALTH_TIMEOUT_SECONDS) as response:
            return url if response.status == 200 else None
    except (OSError, ValueError):
        return None


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
