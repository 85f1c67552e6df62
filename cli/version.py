"""`vlp --version`: the installed distribution's version, and the commit of the checkout it runs from."""

from __future__ import annotations

import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def describe_version() -> str:
    try:
        installed = version("vlp")
    except PackageNotFoundError:
        installed = "unknown"
    commit = source_commit()
    return f"vlp {installed}" + (f" (git {commit})" if commit else "")


def source_commit() -> str | None:
    """HEAD of the git checkout vlp's source lives in (an editable install), with `-dirty` for local changes;
    None for an installed wheel or when git is missing."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(source), "describe", "--always", "--dirty", "--abbrev=12", "--match", "NO-TAGS"],
                                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return commit.stdout.strip() or None if commit.returncode == 0 else None
