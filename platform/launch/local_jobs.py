"""Local TorchX jobs found again by name.

TorchX's local scheduler knows a job only inside the process that launched it, so a retried step (or a second
`vlp run --resume`) could not ask it whether the job of its run still runs. Each local launch therefore leaves a
record, `$VLP_HOME/jobs/<job name>.json`: the token every process of the job carries in `VLP_JOB_TOKEN`, the
launching process (the job's owner) and the job's state. A launch under the same name then:
- attaches to the job while any of its processes is alive (or its owner is still starting it), and waits;
- does not run a job again that SUCCEEDED;
- launches a new job otherwise (the last one failed or died with its owner; training resumes from its checkpoint).
The record is read and claimed under a file lock, so two attempts at once cannot both launch.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from vlp.platform.launch.ownership import is_alive, owner_entry, parse_owners
from vlp.platform.launch.torchx_launcher import LOCAL_WAIT_SECONDS, LaunchRequest, LaunchResult, build_appdef, prepare_submission, wait_for_job
from vlp.platform.storage.lease import JOB_TOKEN_ENV

log = logging.getLogger(__name__)

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


@dataclass(frozen=True)
class LocalJobRecord:
    name: str
    token: str
    owner: str
    """`pid:start time` of the process that launched the job and waits for it."""
    state: str = "LAUNCHING"
    app_handle: str = ""
    log_dir: str = ""

    def owner_alive(self) -> bool:
        return any(is_alive(pid, started) for pid, started in parse_owners(self.owner))


def jobs_dir() -> Path:
    from vlp.platform.state import vlp_home

    return vlp_home() / "jobs"


def record_path(name: str) -> Path:
    return jobs_dir() / f"{name}.json"


def read_record(name: str) -> LocalJobRecord | None:
    try:
        return LocalJobRecord(**json.loads(record_path(name).read_text()))
    except FileNotFoundError:
        return None


def write_record(record: LocalJobRecord) -> None:
    from vlp.platform.storage.local import LocalStorage

    LocalStorage().write_bytes(str(record_path(record.name)), json.dumps(asdict(record)).encode())


def job_processes(token: str) -> list[int]:
    """Processes of this machine that belong to the job (its agents and workers carry its token)."""
    marker = f"{JOB_TOKEN_ENV}={token}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as handle:
                    if marker in handle.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                continue
    return found


def is_running(record: LocalJobRecord) -> bool:
    return bool(job_processes(record.token)) or (record.state not in TERMINAL and record.owner_alive())


def launch_or_attach_locally(request: LaunchRequest, stream_logs: bool = True) -> LaunchResult:
    from vlp.platform.storage.locks import exclusive

    path = record_path(request.name)
    with exclusive(str(path)):
        existing = read_record(request.name)
        if existing is not None and existing.state == "SUCCEEDED":
            log.info("job %s already finished: not running it again", request.name)
            return LaunchResult(app_handle=existing.app_handle, state="SUCCEEDED", succeeded=True, reason="", attached=True)
        running = existing is not None and is_running(existing)
        if not running:
            record = LocalJobRecord(name=request.name, token=f"{request.name}-{uuid.uuid4().hex[:12]}", owner=owner_entry(os.getpid()))
            write_record(record)
    if running:
        return _attach(existing, request, stream_logs)
    return _launch(record, request, stream_logs)


def _launch(record: LocalJobRecord, request: LaunchRequest, stream_logs: bool) -> LaunchResult:
    from torchx.runner import get_runner

    appdef = build_appdef(request, record.token)
    state = "FAILED"
    try:
        with get_runner() as runner:
            app_handle = runner.schedule(prepare_submission(runner, appdef, request))
            log.info("launched %s", app_handle)
            status = runner.status(app_handle)
            log_dir = (status.ui_url or "").removeprefix("file://") if status else ""
            record = replace(record, state="RUNNING", app_handle=app_handle, log_dir=log_dir)
            write_record(record)
            result = wait_for_job(runner, app_handle, appdef, request, stream_logs, attached=False)
            state = "SUCCEEDED" if result.succeeded else "FAILED"
            return result
    finally:
        write_record(replace(record, state=state))


def _attach(record: LocalJobRecord, request: LaunchRequest, stream_logs: bool) -> LaunchResult:
    """Wait for a job that another process launched; relaunch if it did not succeed."""
    pids = job_processes(record.token)
    owner = record.owner.partition(":")[0]
    print(f"job {request.name} is already running (pids {', '.join(map(str, pids)) or 'starting'}, launched by pid {owner}): "
          f"attaching to it instead of launching another" + (f"; its logs: {record.log_dir}" if record.log_dir else ""), flush=True)
    while is_running(record):
        time.sleep(LOCAL_WAIT_SECONDS)
        record = read_record(request.name) or record
    if record.state == "SUCCEEDED":
        return LaunchResult(app_handle=record.app_handle, state="SUCCEEDED", succeeded=True, reason="", attached=True)
    log.warning("job %s ended %s: launching it again", request.name, record.state if record.state in TERMINAL else "with its owner")
    return launch_or_attach_locally(request, stream_logs)
