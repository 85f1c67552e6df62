"""A local training job dies with the process that launched it.

TorchX's local scheduler starts every replica (a torchrun agent) in a session of its own, and torchrun starts
every worker in a session of its own, so neither Ctrl-C nor a signal to `vlp run`'s process group reaches them:
when `vlp run` is killed they would train on as orphans beside the job that `vlp run --resume` starts.

Two mechanisms, because neither covers every case alone:
- the parent-death signal (Linux `prctl(PR_SET_PDEATHSIG)`): the kernel sends SIGTERM to a process when the
  thread that started it exits. It only reaches direct children, and only from the launching thread.
- a watchdog thread in the agent and in every worker that checks the owners named in `VLP_OWNER_PIDS` (each as
  `pid:start time`, so a recycled pid is not mistaken for the owner). `vlp run` names itself; the step that
  launches the job adds itself. When any owner is gone the job stops.

The watchdog stops an agent with SIGTERM: torchrun then sends SIGTERM to its workers, which write a checkpoint
of the step they are on (see vlp.workloads.train.preemption) and exit, and torchrun does not restart them.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

OWNER_PIDS_ENV = "VLP_OWNER_PIDS"
PR_SET_PDEATHSIG = 1
WATCH_INTERVAL_SECONDS = 0.5


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or parentheses.
    fields = stat[stat.rfind(b")") + 2:].split()
    if fields[0] == b"Z":  # a zombie has exited; only its exit status is left to collect
        return None
    return int(fields[19])


def owner_entry(pid: int) -> str:
    return f"{pid}:{process_start_time(pid) or 0}"


def parse_owners(value: str | None) -> list[tuple[int, int]]:
    owners = []
    for item in (value or "").split(","):
        if item.strip():
            pid, _, started = item.strip().partition(":")
            owners.append((int(pid), int(started or 0)))
    return owners


def owners_with(pid: int, inherited: str | None = None) -> str:
    """`VLP_OWNER_PIDS` naming the inherited owners plus `pid`."""
    entries = [item for item in (inherited or "").split(",") if item.strip()]
    entry = owner_entry(pid)
    return ",".join([*entries, entry] if entry not in entries else entries)


def is_alive(pid: int, started: int) -> bool:
    current = process_start_time(pid)
    return current is not None and (started == 0 or current == started)


def gone_owner(owners: list[tuple[int, int]]) -> int | None:
    for pid, started in owners:
        if not is_alive(pid, started):
            return pid
    return None


def die_with_parent(signum: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send `signum` to this process when its parent thread exits (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch_owners(on_gone: Callable[[int], None], owners: list[tuple[int, int]] | None = None,
                 interval: float = WATCH_INTERVAL_SECONDS) -> threading.Thread | None:
    """Start a daemon thread that calls `on_gone(pid)` once when any owner (default: from `VLP_OWNER_PIDS`) is gone."""
    owners = parse_owners(os.environ.get(OWNER_PIDS_ENV)) if owners is None else owners
    if not owners:
        return None

    def watch() -> None:
        while True:
            pid = gone_owner(owners)
            if pid is not None:
                on_gone(pid)
                return
            time.sleep(interval)

    thread = threading.Thread(target=watch, name="vlp-owner-watch", daemon=True)
    thread.start()
    return thread


def stop_when_owner_is_gone(term_after: float = 0.0, kill_after: float = 60.0) -> threading.Thread | None:
    """For a process of the job, from its main thread: once its parent or an owner is gone, SIGTERM this process
    (once) and SIGKILL it `kill_after` seconds later. SIGTERM lets torchrun stop its workers and the workers
    checkpoint; the SIGKILL only ends a process that is stuck.

    The parent's death arrives as SIGUSR1 and is relayed as one SIGTERM: the kernel sends the parent-death signal
    each time the child is handed from one exiting thread of its parent to the next, and a second SIGTERM would
    interrupt torchrun in the middle of stopping its workers. The watchdog waits `term_after` seconds first (a
    worker leaves it to its agent to stop it)."""
    stopping = threading.Lock()

    def terminate_once() -> None:
        if stopping.acquire(blocking=False):
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGUSR1, lambda signum, frame: terminate_once())
    die_with_parent(signal.SIGUSR1)

    def stop(pid: int) -> None:
        log.warning("the process that launched this job (pid %d) is gone: stopping", pid)
        time.sleep(term_after)
        terminate_once()
        time.sleep(kill_after)
        os.kill(os.getpid(), signal.SIGKILL)

    return watch_owners(stop)
