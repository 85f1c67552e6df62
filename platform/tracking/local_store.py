"""The local MLflow store (SQLite under VLP_HOME) is created once, under a file lock.

MLflow creates and migrates the schema on first use; several `vlp run` started at once on a fresh home
would all run the migrations on the same file and fail ("duplicate column", "Online migration expected to
match one row"). After creation SQLite's own locking (MLflow sets a 20 s busy timeout) serialises writers.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

SQLITE_PREFIX = "sqlite:///"


SQLITE_BUSY_TIMEOUT_MS = 60_000
_waiting_installed = False


def wait_for_sqlite_locks(tracking_uri: str) -> None:
    """For a SQLite store: every SQLite connection this process opens waits up to a minute for another writer's lock.
    MLflow sets a 20 s busy timeout on its sessions only; its schema checks when a store is built run on connections
    with sqlite3's 5 s default, and with several runs at once on one store those failed with "database is locked"."""
    global _waiting_installed
    if _waiting_installed or not tracking_uri.startswith(SQLITE_PREFIX):
        return
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _wait_for_locks(connection, _record) -> None:
        if isinstance(connection, sqlite3.Connection):
            connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")

    _waiting_installed = True


def prepare_tracking_store(tracking_uri: str) -> None:
    """Create the SQLite store if it is new (quietly: MLflow logs each migration at INFO); a no-op for tracking servers."""
    if not tracking_uri.startswith(SQLITE_PREFIX):
        return
    wait_for_sqlite_locks(tracking_uri)
    path = Path(tracking_uri[len(SQLITE_PREFIX):].split("?", 1)[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            import logging

            from mlflow.tracking import MlflowClient

            for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
                logging.getLogger(name).setLevel(logging.WARNING)
            MlflowClient(tracking_uri=tracking_uri).search_experiments(max_results=1)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
