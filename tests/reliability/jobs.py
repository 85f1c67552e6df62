"""Helpers for fault-injection tests: start a training job or `vlp run` as a subprocess, find and kill its
processes, read back what it logged, and scan everything it wrote for planted credentials."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
VLP = str(Path(sys.executable).parent / "vlp")


@contextlib.contextmanager
def environ(**values: str):
    """Set environment variables in this process for the duration (MLflow and boto3 read them per call)."""
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class Job:
    """A subprocess whose output lines are collected as they come (stdout and stderr merged)."""

    process: subprocess.Popen
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.2)
        raise AssertionError(f"no line starting {prefix!r} within {timeout:.0f}s; output tail:\n" + "\n".join(self.lines[-60:]))

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self._reader.join(10)
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def start(command: list[str], env: dict[str, str], cwd: Path) -> Job:
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    return Job(process)


def start_training(spec: dict, runtime_json: str, train_uri: str, env: dict[str, str], workdir: Path) -> Job:
    """The start-run and pretrain steps of one experiment (see train_job.py)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "spec.json").write_text(json.dumps(spec))
    (workdir / "runtime.json").write_text(runtime_json)
    return start([PYTHON, str(HERE / "train_job.py"), str(workdir / "spec.json"), str(workdir / "runtime.json"), train_uri], env, workdir)


def run_processes(run_id: str) -> dict[int, tuple[list[bytes], dict[bytes, bytes]]]:
    """Every process of this machine working on the run (torchrun agents, their shells, the workers)."""
    found = {}
    marker = run_id.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            if not any(marker in arg for arg in argv):
                continue
            env = dict(item.split(b"=", 1) for item in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0") if b"=" in item)
        except OSError:
            continue
        found[int(entry)] = (argv, env)
    return found


def worker_pid(run_id: str, rank: int, timeout: float = 120) -> int:
    """The training worker (not torchrun, not its shell) of `rank` in this run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid, (argv, env) in run_processes(run_id).items():
            is_worker = b"vlp.workloads.train.main" in argv and not any(b"torchrun" in arg for arg in argv) and argv[0] != b"bash"
            if is_worker and env.get(b"RANK") == str(rank).encode():
                return pid
        time.sleep(0.2)
    raise AssertionError(f"no worker of rank {rank} for run {run_id}")


def kill_run(run_id: str) -> int:
    """SIGKILL every process of the run (a machine that lost power); returns how many there were."""
    pids = list(run_processes(run_id))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def metric_history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(metric.step, metric.value) for metric in sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))]


def find_secrets(secrets: dict[str, str], blobs: dict[str, bytes]) -> list[str]:
    """`where: NAME` for every planted value found in any blob."""
    found = []
    for where, blob in blobs.items():
        for name, value in secrets.items():
            if value.encode() in blob:
                found.append(f"{where}: {name}")
    return found


def files_under(root: Path) -> dict[str, bytes]:
    blobs = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with contextlib.suppress(OSError):
                blobs[str(path)] = path.read_bytes()
    return blobs


def service_env(planted: dict[str, str], s3_url: str, mlflow_url: str, home: Path) -> dict[str, str]:
    """A vlp process's environment against the loopback services, with the planted credentials."""
    from services import TEST_CREDENTIALS

    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "AWS_DEFAULT_REGION": TEST_CREDENTIALS["AWS_DEFAULT_REGION"],
        **planted,
        "AWS_ENDPOINT_URL": s3_url,
        "MLFLOW_TRACKING_URI": mlflow_url,
        "MLFLOW_TRACKING_USERNAME": "admin",
        "VLP_HOME": str(home),
        "PYTHONSAFEPATH": "1",
    }
