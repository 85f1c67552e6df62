"""Run a module under torchrun through TorchX (`dist.torchrun`), wait for it and stream its logs.

`local_cwd` runs the replicas as processes in the current directory; `kubernetes` submits a Volcano job.
The same AppDef serves both; only the scheduler and its config differ.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LaunchRequest:
    module: str
    args: list[str]
    nodes: int
    procs_per_node: int
    gpus_per_node: int = 0
    max_restarts: int = 0
    name: str = "vlp-train"
    image: str = "vlp:local"
    scheduler: str = "local_cwd"
    scheduler_cfg: dict[str, object] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    cpu: int = 2
    mem_mb: int = 4096


@dataclass(frozen=True)
class LaunchResult:
    app_handle: str
    state: str
    succeeded: bool
    reason: str


class LaunchFailed(RuntimeError):
    pass


def build_appdef(request: LaunchRequest):
    from torchx.components.dist import torchrun

    env = dict(request.env)
    if request.scheduler == "local_cwd":
        # The replicas run `torchrun` through bash: put this interpreter's scripts first on PATH.
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    return torchrun(
        *request.args,
        m=request.module,
        image=request.image,
        name=request.name,
        cpu=request.cpu,
        gpu=request.gpus_per_node,
        memMB=request.mem_mb,
        j=f"{request.nodes}x{request.procs_per_node}",
        env=env,
        max_retries=request.max_restarts,
        rdzv_port=free_port() if request.scheduler == "local_cwd" else 29500,
    )


def dryrun(request: LaunchRequest):
    """The scheduler request TorchX would submit (for kubernetes: the Volcano Job), without submitting."""
    from torchx.runner import get_runner

    with get_runner() as runner:
        return runner.dryrun(build_appdef(request), request.scheduler, cfg=dict(request.scheduler_cfg))


def launch_and_wait(request: LaunchRequest, stream_logs: bool = True) -> LaunchResult:
    from torchx.runner import get_runner

    appdef = build_appdef(request)
    with get_runner() as runner:
        app_handle = runner.run(appdef, request.scheduler, cfg=dict(request.scheduler_cfg))
        log.info("launched %s", app_handle)
        if stream_logs:
            _follow_logs(runner, app_handle, appdef.roles[0].name, request.nodes)
        status = runner.wait(app_handle, wait_interval=1)
        state = str(status.state) if status else "UNKNOWN"
        succeeded = status is not None and status.is_terminal() and status.state.name == "SUCCEEDED"
        reason = "" if succeeded else _failure_reason(status) + _last_error_lines(runner, app_handle, appdef.roles[0].name, request.nodes)
    return LaunchResult(app_handle=app_handle, state=state, succeeded=succeeded, reason=reason)


def _follow_logs(runner, app_handle: str, role: str, replicas: int) -> None:
    def follow(replica: int) -> None:
        try:
            for line in runner.log_lines(app_handle, role, replica, should_tail=True):
                print(f"[{role}/{replica}] {line}", end="" if line.endswith("\n") else "\n", flush=True)
        except Exception as err:  # logs are best effort; the job state decides success
            log.warning("log streaming for replica %d stopped: %s", replica, err)

    for replica in range(replicas):
        threading.Thread(target=follow, args=(replica,), daemon=True).start()


def _last_error_lines(runner, app_handle: str, role: str, replicas: int) -> str:
    """The last traceback line a replica printed, which usually names the real cause."""
    from torchx.schedulers.api import Stream

    for replica in range(replicas):
        try:
            lines = [line.rstrip() for line in runner.log_lines(app_handle, role, replica, streams=Stream.STDERR)]
        except Exception:
            continue
        errors = [line for line in lines if line and not line.startswith((" ", "\t")) and ("Error" in line or "Exception" in line)]
        if errors:
            return f" | replica {replica}: {errors[0][-500:]}"
    return ""


def _failure_reason(status) -> str:
    if status is None:
        return "the scheduler lost track of the job"
    messages = [status.msg] if getattr(status, "msg", "") else []
    for role in getattr(status, "roles", []) or []:
        for replica in getattr(role, "replicas", []) or []:
            if getattr(replica, "structured_error_msg", "") and replica.structured_error_msg != "<NONE>":
                messages.append(replica.structured_error_msg)
    return f"job ended {status.state.name}" + (f": {' | '.join(messages)[:2000]}" if messages else "")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
