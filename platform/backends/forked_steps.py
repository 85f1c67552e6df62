"""Run kfp.local's steps in forks of the `vlp run` process instead of fresh interpreters.

kfp.local's SubprocessRunner starts every lightweight step as `sh -c '… python3 -m kfp.dsl.executor_main …'`:
a new interpreter that imports kfp and MLflow again, about 2.5 s per step on two cores before the step does
anything. A fork of this process has them imported already. The step still runs in its own process (its own
memory, environment, exit code and output), through kfp's own executor, so inputs, outputs, statuses, the exit
handler and caching stay kfp.local's; only the process start is different.

Only the standard lightweight-component command is forked; anything else goes to kfp's own subprocess path.
This hooks kfp.local's `subprocess_task_handler.run_local_subprocess` and MLflow's engine cache (kfp 2.17,
MLflow 3.x); tests/unit/platform/test_forked_steps.py fails if an upgrade moves either.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from typing import Iterator

EXECUTOR_MODULE = "kfp.dsl.executor_main"
# What the children should find imported: kfp's executor and the MLflow client every step uses.
PRELOADED_MODULES = ("kfp.dsl.executor_main", "mlflow.tracking", "mlflow.entities")
INTERRUPTED_STEP_GRACE_SECONDS = 30.0

# A fork copies every lock of the process as it is at that instant, held ones included. The threads of `vlp run`
# that call the tracking store while steps are forked (the console's training bar, system metrics) do so inside
# `between_forks()`; `fork()` waits for them. Without it a fork taken while one of them was inside SQLite copied
# SQLite's memory mutex held, and the step hung forever the first time it freed SQLite memory (seen in CI: the
# child's garbage collector finalising an inherited connection).
_FORK_GUARD = threading.RLock()


def between_forks():
    """The guard (a re-entrant lock): hold it around any call into the tracking store (SQLite) from a thread other
    than the one that forks."""
    return _FORK_GUARD


def fork() -> int:
    """`os.fork()` at a moment when no other thread of this process is inside a `between_forks()` block."""
    with _FORK_GUARD:
        return os.fork()


@contextlib.contextmanager
def forked_steps(tracking_uri: str | None = None, step_logs=None) -> Iterator[None]:
    """While active, kfp.local's SubprocessRunner runs each step in a fork of this process. `step_logs`
    (vlp.platform.backends.step_logs.StepLogs): each step's output goes to its log file instead of stdout."""
    import importlib

    from kfp.local import subprocess_task_handler

    if not hasattr(os, "fork"):
        yield
        return
    for module in PRELOADED_MODULES:
        importlib.import_module(module)
    if tracking_uri:
        warm_tracking_stores(tracking_uri)
    original = subprocess_task_handler.run_local_subprocess

    def run(full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        executor_args = _executor_args(full_command)
        if executor_args is None:
            return original(full_command=full_command, env_vars=env_vars)
        return run_in_fork(*executor_args, env_vars=env_vars or {}, step_logs=step_logs)

    subprocess_task_handler.run_local_subprocess = run
    try:
        yield
    finally:
        subprocess_task_handler.run_local_subprocess = original


def _executor_args(full_command: list[str]) -> tuple[str, list[str]] | None:
    """(component source, executor arguments) from `sh -ec SCRIPT SOURCE --executor_input … --function_to_execute …`."""
    if len(full_command) < 4 or full_command[0] != "sh" or full_command[1] not in ("-c", "-ec") or EXECUTOR_MODULE not in full_command[2]:
        return None
    if "pip install" in full_command[2]:
        return None
    return full_command[3], list(full_command[4:])


def run_in_fork(source: str, executor_args: list[str], env_vars: dict[str, str], step_logs=None) -> int:
    """Runs kfp's executor on `source` in a child process; returns its exit code. Its output goes to the step's
    log file with `step_logs`, else it is printed as kfp.local does."""
    record = None
    if step_logs is not None:
        from vlp.platform.backends.step_logs import step_name

        record = step_logs.start(step_name(executor_args))
    with tempfile.TemporaryDirectory(prefix="vlp-step-") as program_dir:
        module_path = os.path.join(program_dir, "ephemeral_component.py")
        with open(module_path, "w") as handle:
            handle.write(source)
        sys.stdout.flush()
        sys.stderr.flush()
        read_end, write_end = os.pipe()
        pid = fork()
        if pid == 0:
            os.close(read_end)
            _run_child(write_end, module_path, executor_args, env_vars)
        os.close(write_end)
        try:
            with os.fdopen(read_end, "r", errors="replace") as output:
                if record is None:
                    for line in output:
                        print(line, end="")
                    print("\n")
                else:
                    _copy_to_log(output, record.log, step_logs.echo)
        except KeyboardInterrupt:
            # Ctrl-C reached the step too; give it time to cancel its job before this process goes.
            _wait_briefly(pid, INTERRUPTED_STEP_GRACE_SECONDS)
            if record is not None:
                step_logs.finish(record, 130)
            raise
        _, wait_status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(wait_status)
        if record is not None:
            step_logs.finish(record, code)
        return code


def _copy_to_log(output, log_path, echo) -> None:
    with open(log_path, "a", buffering=1) as log:
        for line in output:
            log.write(line)
            if echo is not None:
                echo.write(line)
                echo.flush()


def _wait_briefly(pid: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0] != 0:
            return
        time.sleep(0.1)


def _run_child(output_fd: int, module_path: str, executor_args: list[str], env_vars: dict[str, str]) -> None:
    """The forked side: never returns into the parent's code."""
    code = 1
    try:
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.close(output_fd)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        # As in a fresh interpreter: Ctrl-C raises KeyboardInterrupt (the train step cancels its job on it).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        _fresh_store_locks()
        _fresh_database_connections()
        os.environ.update(env_vars)
        os.environ["_KFP_RUNTIME"] = "true"
        sys.argv = [EXECUTOR_MODULE, "--component_module_path", module_path, *executor_args]
        from kfp.dsl.executor_main import executor_main

        executor_main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # noqa: BLE001 - the step's traceback is its log, as in a fresh interpreter
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


# Module- and class-level locks MLflow takes while it builds a store (seconds for SQLite: the schema check). A fork
# taken while another thread of `vlp run` (the training bar, MLflow's system metrics) held one copies it locked, and
# the step then waits forever on its first client call (seen under load): the child gets fresh ones.
STORE_BUILDING_LOCKS = (
    ("mlflow.tracking._tracking_service.registry", None, "_building_store_lock"),
    ("mlflow.tracking._model_registry.registry", None, "_building_store_lock"),
    ("mlflow.tracking._workspace.registry", None, "_building_workspace_store_lock"),
    ("mlflow.store.tracking.sqlalchemy_store", "SqlAlchemyStore", "_engine_map_lock"),
    ("mlflow.store.model_registry.sqlalchemy_store", "SqlAlchemyStore", "_engine_map_lock"),
)


def _fresh_store_locks() -> None:
    import importlib

    for module_name, class_name, attribute in STORE_BUILDING_LOCKS:
        owner = importlib.import_module(module_name)
        owner = getattr(owner, class_name) if class_name else owner
        lock = getattr(owner, attribute)
        setattr(owner, attribute, threading.RLock() if type(lock) is type(threading.RLock()) else threading.Lock())


def _fresh_database_connections() -> None:
    """SQLAlchemy's rule for os.fork: the child replaces the connection pools it inherited and leaves the parent's
    open connections alone (`dispose(close=False)`); MLflow's cached stores then open their own."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore

    for store in (TrackingStore, RegistryStore):
        for engine in list(store._engine_map.values()):
            engine.dispose(close=False)


def warm_tracking_stores(tracking_uri: str) -> None:
    """Open the tracking and registry stores once here (a SQLite store checks its schema on creation), so that
    every forked step finds them made."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    _ = client._tracking_client.store
    _ = client._get_registry_client().store
