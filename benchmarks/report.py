"""What every benchmark returns: a table (columns and rows), headline numbers, every single run, and the state
of the machine while it ran. `vlp bench` prints the table and writes the whole report as JSON."""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    format: str = "{}"
    """A str.format pattern for the value; missing values print as "–"."""

    def render(self, value: Any) -> str:
        return "–" if value is None else self.format.format(value)


@dataclass
class BenchReport:
    name: str
    """Short name; the JSON file is `<name>-<UTC time>.json`."""
    title: str
    settings: dict[str, Any]
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    """Headline numbers (ratios, overheads) under stable keys."""
    notes: list[str] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    """Every measurement in the order it was taken."""
    environment: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.environment:
            self.environment = machine_state()
        self._started = time.perf_counter()

    def finish(self) -> "BenchReport":
        """Record the load at the end (load that rose during the runs shows here) and the bench's duration."""
        self.environment["load_average_end"] = _load_average()
        self.environment["bench_seconds"] = round(time.perf_counter() - self._started, 1)
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "name": self.name,
            "title": self.title,
            "settings": self.settings,
            "columns": [asdict(column) for column in self.columns],
            "rows": self.rows,
            "summary": self.summary,
            "notes": self.notes,
            "runs": self.runs,
            "environment": self.environment,
        }

    def write(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = directory / f"{self.name}-{stamp}.json"
        path.write_text(json.dumps(self.as_dict(), indent=2, default=str) + "\n")
        return path


def machine_state() -> dict[str, Any]:
    """Facts that decide whether two reports can be compared: load, cores, versions, commit."""
    import torch

    state: dict[str, Any] = {
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average_start": _load_average(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "git_commit": _git_commit(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return state


def _load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def _cpu_model() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or None
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else None


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5,
        )
        commit = result.stdout.strip() or None
        dirty = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return f"{commit}+dirty" if commit and dirty else commit
    except (OSError, subprocess.SubprocessError):
        return None
