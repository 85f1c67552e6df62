"""Run a module under torchrun through TorchX (`dist.torchrun`), wait for it and stream its logs.

`local_cwd` runs the replicas as processes in the current directory; `kubernetes` submits a Volcano job.
The same AppDef serves both; only the scheduler and its config differ.

Launches are idempotent: a job is named after its run (the caller derives `LaunchRequest.name` from the run
key), and a launch first looks for a job of that name. One still running is attached to (waited on) instead of
launching another; one that finished is not run again; one that failed is replaced. On Kubernetes the Volcano
job carries the name; on this machine a record under `$VLP_HOME/jobs/` does (see local_jobs.py). A local job
also stops when the process that launched it dies (see ownership.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
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
CLUSTER_WAIT_SECONDS = 10.0


# How long a multi-node job's nodes wait for each other to join before the job fails (torchrun's join_timeout).
RENDEZVOUS_TIMEOUT_SECONDS = 600
RENDEZVOUS_TIMEOUT_ERROR = "RendezvousTimeoutError"
REPLICA_ENV = "VLP_REPLICA_ID"

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
    rendezvous_timeout: int = RENDEZVOUS_TIMEOUT_SECONDS
    """Seconds the nodes of a multi-node job wait for each other before it fails, naming the missing ones."""


@dataclass(frozen=True)
class LaunchResult:
    app_handle: str
    state: str
    succeeded: bool
    reason: str
    attached: bool = False
    """True when a job of this name was already there: it was waited on (or had finished), not launched again."""


class LaunchFailed(RuntimeError):
    pass


def build_appdef(request: LaunchRequest, job_token: str | None = None):
    """The AppDef; `job_token` (default: the job's name) is shared by every process of the job, across restarts."""
    from torchx.components.dist import torchrun
    from torchx.specs import macros

    from vlp.platform.launch.ownership import OWNER_PIDS_ENV, owners_with
    from vlp.platform.storage.lease import JOB_TOKEN_ENV

    env = dict(request.env)
    env[JOB_TOKEN_ENV] = job_token or request.name
    env[REPLICA_ENV] = macros.replica_id
    local = request.scheduler == "local_cwd"
    if local:
        # The replicas run `torchrun` through bash: put this interpreter's scripts first on PATH.
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
        # The job stops when this process, or an owner it inherited (`vlp run`), is gone.
        env[OWNER_PIDS_ENV] = owners_with(os.getpid(), os.environ.get(OWNER_PIDS_ENV))
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
        # One owner of restarts: on a cluster Volcano restarts the whole job (TorchX's `max_retries`, a RestartJob
        # policy); on this machine, where local_cwd ignores it, torchrun restarts the workers (`--max-restarts`).
        max_retries=0 if local else request.max_restarts,
        rdzv_port=free_port() if local else 29500,
        rdzv_conf=f"join_timeout={request.rendezvous_timeout}" if request.nodes > 1 else None,
    )
    # Locally the agent is torchrun run by vlp's owned_agent, which stops it when the job's owner is gone.
    agent = f"{shlex.quote(sys.executable)} -m vlp.platform.launch.owned_agent" if local else "torchrun"
    # torchrun's own `--max-restarts` restarts all workers in place after one fails (they resume from the latest
    # checkpoint); only locally, where it is the one owner of restarts (see `max_retries` above).
    restarts = f" --max-restarts {request.max_restarts}" if request.max_restarts and local else ""
    for role in appdef.roles:
        flag, command = role.args
        role.args = [flag, command.replace("torchrun ", f"{agent}{restarts} ", 1)] if local else [flag, command]
        if request.max_restarts and local:
            # With the agent's TCPStore shared across rendezvous rounds, restarted workers read the previous
            # round's gloo/NCCL addresses and hang; a fresh store per round (rank 0's worker hosts it) does not.
            role.env.setdefault("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "1")
    return appdef


def dryrun(request: LaunchRequest):
    """The scheduler request TorchX would submit (for kubernetes: the Volcano Job), without submitting."""
    from torchx.runner import get_runner

    with get_runner() as runner:
        return prepare_submission(runner, build_appdef(request), request)


def prepare_submission(runner, appdef, request: LaunchRequest):
    """Render the request, then add the pod settings TorchX has no parameters for (submitted by `runner.schedule`)."""
    info = runner.dryrun(appdef, request.scheduler, cfg=dict(request.scheduler_cfg))
    if request.scheduler == "kubernetes":
        from torchx.schedulers.kubernetes_scheduler import sanitize_for_serialization

        from vlp.platform.launch.kubernetes_pods import apply_to_volcano_job

        resource = sanitize_for_serialization(info.request.resource)
        if request.pod is not None:
            resource = apply_to_volcano_job(resource, request.pod, request.scheduler_cfg.get("namespace"))
        # The job's own name, not TorchX's name plus a random suffix: a retried step finds the job by it.
        resource["metadata"]["name"] = request.name
        info.request.resource = resource
    return info


def launch_and_wait(request: LaunchRequest, stream_logs: bool = True) -> LaunchResult:
    if request.scheduler == "local_cwd":
        from vlp.platform.launch.local_jobs import launch_or_attach_locally

        return launch_or_attach_locally(request, stream_logs)
    return _launch_or_attach_on_cluster(request, stream_logs)


def _launch_or_attach_on_cluster(request: LaunchRequest, stream_logs: bool) -> LaunchResult:
    """The Volcano job named `request.name`: attached to if it runs, kept if it succeeded, replaced if it failed."""
    from torchx.runner import get_runner
    from torchx.specs import make_app_handle

    appdef = build_appdef(request)
    namespace = request.scheduler_cfg.get("namespace") or "default"
    with get_runner() as runner:
        app_handle = make_app_handle(request.scheduler, runner.name(), f"{namespace}:{request.name}")
        existing = runner.status(app_handle)
        if existing is not None and existing.state.name == "SUCCEEDED":
            log.info("%s already finished: not running it again", app_handle)
            return LaunchResult(app_handle=app_handle, state=str(existing.state), succeeded=True, reason="", attached=True)
        attached = existing is not None and not existing.is_terminal()
        if attached:
            log.warning("%s is already running: attaching to it instead of launching another", app_handle)
        else:
            if existing is not None:
                log.warning("%s ended %s earlier: replacing it", app_handle, existing.state.name)
                _delete_and_wait(runner, app_handle)
            app_handle, attached = _schedule_once(runner, prepare_submission(runner, appdef, request), app_handle)
        return wait_for_job(runner, app_handle, appdef, request, stream_logs, attached)


def _delete_and_wait(runner, app_handle: str, timeout: float = 120.0) -> None:
    """Kubernetes deletes in the background: the name is free only once the job is gone."""
    runner.delete(app_handle)
    deadline = time.monotonic() + timeout
    while runner.status(app_handle) is not None:
        if time.monotonic() > deadline:
            raise LaunchFailed(f"{app_handle} was deleted but is still there after {timeout:.0f} s")
        time.sleep(1)


def _schedule_once(runner, info, app_handle: str) -> tuple[str, bool]:
    """Submit the job; if a job of that name appeared meanwhile (another attempt of this step), attach to it."""
    try:
        launched = runner.schedule(info)
    except ValueError as err:
        if "already exists" not in str(err):
            raise
        log.warning("%s was launched meanwhile by another attempt: attaching to it", app_handle)
        return app_handle, True
    log.info("launched %s", launched)
    return launched, False


def wait_for_job(runner, app_handle: str, appdef, request: LaunchRequest, stream_logs: bool, attached: bool) -> LaunchResult:
    role = appdef.roles[0].name
    if stream_logs:
        _follow_logs(runner, app_handle, role, request.nodes)
    with _cancel_on_termination(runner, app_handle):
        status = runner.wait(app_handle, wait_interval=LOCAL_WAIT_SECONDS if request.scheduler == "local_cwd" else CLUSTER_WAIT_SECONDS)
    state = str(status.state) if status else "UNKNOWN"
    succeeded = status is not None and status.is_terminal() and status.state.name == "SUCCEEDED"
    reason = "" if succeeded else _failure_reason(status) + _job_log_diagnosis(runner, app_handle, role, request)
    return LaunchResult(app_handle=app_handle, state=state, succeeded=succeeded, reason=reason, attached=attached)


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


def _job_log_diagnosis(runner, app_handle: str, role: str, request: LaunchRequest) -> str:
    """What the replicas' logs say about a failure: the nodes missing from a rendezvous that timed out, else the
    first traceback line a replica printed, which usually names the real cause."""
    from torchx.schedulers.api import Stream

    # The kubernetes scheduler serves only the combined stream.
    stream = Stream.COMBINED if app_handle.startswith("kubernetes://") else Stream.STDERR
    logs: dict[int, list[str] | None] = {}
    for replica in range(request.nodes):
        try:
            logs[replica] = [line.rstrip() for line in runner.log_lines(app_handle, role, replica, streams=stream)]
        except Exception:
            logs[replica] = None  # no log at all: the node never started (on Kubernetes, a pod never scheduled)
    return missing_nodes_reason(logs, request.rendezvous_timeout) or first_error_line(logs)


def missing_nodes_reason(logs: dict[int, list[str] | None], timeout: int) -> str:
    """When some node timed out in the rendezvous: the nodes that did not (they never joined)."""
    waited = [replica for replica, lines in logs.items() if lines and any(RENDEZVOUS_TIMEOUT_ERROR in line for line in lines)]
    if not waited:
        return ""
    missing = [replica for replica in logs if replica not in waited]
    if not missing:
        return f" | rendezvous timed out after {timeout} s: no node saw all {len(logs)} nodes join"
    names = ", ".join(f"node {replica}" for replica in missing)
    waiting = f"node{'s' if len(waited) > 1 else ''} {', '.join(map(str, waited))}"
    return f" | rendezvous timed out after {timeout} s: {names} never joined ({waiting} waited for {'it' if len(missing) == 1 else 'them'})"


def first_error_line(logs: dict[int, list[str] | None]) -> str:
    for replica, lines in logs.items():
        # The first line shaped like a Python exception (`pkg.mod.SomeError: message`) names the cause; log lines
        # that merely mention an error (a skipped sample, a retried request) start with a timestamp instead.
        errors = [match.group(1) for line in lines or [] if (match := EXCEPTION_LINE.match(line))]
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
