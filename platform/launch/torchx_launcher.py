"""Run a module under torchrun through TorchX (`dist.torchrun`), wait for it and stream its logs.

`local_cwd` runs the replicas as processes in the current directory; `kubernetes` submits a Volcano job.
The same AppDef serves both; only the scheduler and its config differ.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

LOG_RETRY_SECONDS = 5
# How often to poll a local job for its end: polling a local process is free, and every second of lag is overhead.
LOCAL_WAIT_SECONDS = 0.2


EXCEPTION_LINE = re.compile(r"^(?:\[\d+\]:)?((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception)\b(?::.*)?)$")


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
    pod: object = None
    """`TrainingPodSettings` applied to the Volcano job's pods on `kubernetes` (ignored by local_cwd)."""


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
    appdef = torchrun(
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
    # `max_retries` is the scheduler's (Volcano re-creates lost pods; local_cwd ignores it). torchrun's own
    # `--max-restarts` restarts all workers in place after one fails, and they resume from the latest checkpoint.
    if request.max_restarts:
        for role in appdef.roles:
            flag, command = role.args
            role.args = [flag, command.replace("torchrun ", f"torchrun --max-restarts {request.max_restarts} ", 1)]
            # With the agent's TCPStore shared across rendezvous rounds, restarted workers read the previous
            # round's gloo/NCCL addresses and hang; a fresh store per round (rank 0's worker hosts it) does not.
            role.env.setdefault("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "1")
    return appdef


def dryrun(request: LaunchRequest):
    """The scheduler request TorchX would submit (for kubernetes: the Volcano Job), without submitting."""
    from torchx.runner import get_runner

    with get_runner() as runner:
        return _prepare(runner, build_appdef(request), request)


def _prepare(runner, appdef, request: LaunchRequest):
    """Render the request, then add the pod settings TorchX has no parameters for (submitted by `runner.schedule`)."""
    info = runner.dryrun(appdef, request.scheduler, cfg=dict(request.scheduler_cfg))
    if request.scheduler == "kubernetes" and request.pod is not None:
        from vlp.platform.launch.kubernetes_pods import apply_to_volcano_job

        info.request.resource = apply_to_volcano_job(info.request.resource, request.pod, request.scheduler_cfg.get("namespace"))
    return info


def launch_and_wait(request: LaunchRequest, stream_logs: bool = True) -> LaunchResult:
    from torchx.runner import get_runner

    appdef = build_appdef(request)
    with get_runner() as runner:
        app_handle = runner.schedule(_prepare(runner, appdef, request))
        log.info("launched %s", app_handle)
        if stream_logs:
            _follow_logs(runner, app_handle, appdef.roles[0].name, request.nodes)
        with _cancel_on_termination(runner, app_handle):
            status = runner.wait(app_handle, wait_interval=LOCAL_WAIT_SECONDS if request.scheduler == "local_cwd" else 10)
        state = str(status.state) if status else "UNKNOWN"
        succeeded = status is not None and status.is_terminal() and status.state.name == "SUCCEEDED"
        reason = "" if succeeded else _failure_reason(status) + _last_error_lines(runner, app_handle, appdef.roles[0].name, request.nodes)
    return LaunchResult(app_handle=app_handle, state=state, succeeded=succeeded, reason=reason)


def _follow_logs(runner, app_handle: str, role: str, replicas: int) -> None:
    def follow(replica: int) -> None:
        printed = False
        while True:
            try:
                for line in runner.log_lines(app_handle, role, replica, should_tail=True):
                    printed = True
                    print(f"[{role}/{replica}] {line}", end="" if line.endswith("\n") else "\n", flush=True)
                return
            except Exception as err:  # logs are best effort; the job state decides success
                # On Kubernetes the pod does not exist while the job waits in its Volcano queue: try again.
                if printed or _is_finished(runner, app_handle):
                    log.warning("log streaming for replica %d stopped: %s", replica, err)
                    return
                time.sleep(LOG_RETRY_SECONDS)

    for replica in range(replicas):
        threading.Thread(target=follow, args=(replica,), daemon=True).start()


def _last_error_lines(runner, app_handle: str, role: str, replicas: int) -> str:
    """The last traceback line a replica printed, which usually names the real cause."""
    from torchx.schedulers.api import Stream

    # The kubernetes scheduler serves only the combined stream.
    stream = Stream.COMBINED if app_handle.startswith("kubernetes://") else Stream.STDERR
    for replica in range(replicas):
        try:
            lines = [line.rstrip() for line in runner.log_lines(app_handle, role, replica, streams=stream)]
        except Exception:
            continue
        # The first line shaped like a Python exception (`pkg.mod.SomeError: message`) names the cause; log lines
        # that merely mention an error (a skipped sample, a retried request) start with a timestamp instead.
        errors = [match.group(1) for line in lines if (match := EXCEPTION_LINE.match(line))]
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


def _is_finished(runner, app_handle: str) -> bool:
    try:
        status = runner.status(app_handle)
    except Exception:
        return False
    return status is None or status.is_terminal()


@contextlib.contextmanager
def _cancel_on_termination(runner, app_handle: str):
    """A step pod stopped by KFP (`vlp runs cancel`) gets SIGTERM: cancel the job so it does not run on orphaned."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        def terminate(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")

        previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    except KeyboardInterrupt:
        log.warning("stopping: cancelling %s", app_handle)
        try:
            runner.cancel(app_handle)
        except Exception as err:
            log.warning("could not cancel %s: %s", app_handle, err)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
