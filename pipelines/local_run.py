"""`vlp run`: the pretraining pipeline on this machine, then a summary read back from MLflow.

One writer per run:
- `vlp run` is the owner of the training jobs its steps launch: they stop when it dies, whatever the signal
  (vlp.platform.launch.ownership).
- `vlp run --resume RUN` holds the run's resume lease while it works, so a second `--resume` of the same run is
  refused (or waits), and it does not start while a training job of the run still holds the training lease.
- `vlp run --detach` runs the whole pipeline in a background process of its own session, apart from the
  terminal: closing the terminal or killing the foreground `vlp run` does not stop it; the background process is
  the jobs' owner instead. Its output goes to `$VLP_HOME/detached/<run key>.log`, and `vlp runs attach RUN`
  follows it to the end and prints the summary.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vlp.platform.backends.local_kfp import run_pipeline_locally
from vlp.platform.errors import VlpUserError
from vlp.platform.layout import RunLayout
from vlp.platform.runtime import RuntimeContext
from vlp.platform.spec import ExperimentSpec
from vlp.platform.state import vlp_home


@dataclass
class RunOutcome:
    run_id: str | None
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    model: dict[str, str] | None = None
    error: str = ""
    experiment_id: str | None = None
    logs: str | None = None
    """The folder holding each step's log (`<step>.log`) and kfp.local's (`pipeline.log`)."""

    def as_dict(self) -> dict:
        document = {"run_id": self.run_id, "status": self.status, "metrics": self.metrics, "model": self.model, "error": self.error}
        if self.logs:
            document["logs"] = self.logs
        return document


def log_dir(run_key: str) -> Path:
    """Where `vlp run` writes the step logs of one submission (also logged to its MLflow run under `logs/`)."""
    return vlp_home() / "logs" / run_key


def run_experiment(spec: ExperimentSpec, runtime: RuntimeContext, quiet: bool = False, step_logs=None) -> RunOutcome:
    """`step_logs` (StepLogs): each step's output in its own file, uploaded to the run's `logs/` artifacts at the end."""
    from vlp.pipelines.workload_pipelines import build_pipeline_for, pipeline_arguments
    from vlp.platform.launch.ownership import OWNER_PIDS_ENV, owner_entry

    # This process owns every job the steps (its forks) launch: they stop when it is gone.
    os.environ[OWNER_PIDS_ENV] = owner_entry(os.getpid())
    pipeline = build_pipeline_for(spec.workload, runtime.image)
    arguments = pipeline_arguments(spec, runtime)
    from vlp.platform.tracking.system_metrics import system_metrics_while_running

    with system_metrics_while_running(runtime.tracking_uri, runtime.run_key):
        run_pipeline_locally(pipeline, arguments, vlp_home() / "kfp-local", quiet=quiet, tracking_uri=runtime.tracking_uri, step_logs=step_logs)
    outcome = read_outcome(runtime.tracking_uri, runtime.run_key)
    if step_logs is not None:
        outcome.logs = str(step_logs.directory)
        if outcome.run_id is not None:
            _upload_logs(runtime.tracking_uri, outcome.run_id, step_logs.directory)
    return outcome


def _upload_logs(tracking_uri: str, run_id: str, directory: Path) -> None:
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri=tracking_uri).log_artifacts(run_id, str(directory), "logs")
    except Exception as err:  # the run's record stands without its logs; they stay on disk
        logging.getLogger(__name__).warning("could not upload the step logs to run %s: %s", run_id, err)


def read_outcome(tracking_uri: str, run_key: str) -> RunOutcome:
    from mlflow.tracking import MlflowClient

    from vlp.platform.spec.metrics import EVALUATION_PREFIXES

    client = MlflowClient(tracking_uri=tracking_uri)
    runs = client.search_runs(
        experiment_ids=[experiment.experiment_id for experiment in client.search_experiments()],
        filter_string=f"tags.`vlp.run_key` = '{run_key}'",
        max_results=1,
    )
    if not runs:
        return RunOutcome(run_id=None, status="FAILED", error="the pipeline failed before an MLflow run was created")
    run = runs[0]
    # What the run measured: every evaluation metric, and a DG study's held-out accuracies (not its selection scores).
    metrics = {key: value for key, value in run.data.metrics.items() if key.startswith(EVALUATION_PREFIXES) and not key.endswith("/val")}
    model = None
    for version in client.search_model_versions(f"run_id = '{run.info.run_id}'"):
        model = {"name": version.name, "version": str(version.version)}
    return RunOutcome(
        run_id=run.info.run_id, status=run.info.status, metrics=metrics, model=model,
        error=run.data.tags.get("vlp.error", ""), experiment_id=run.info.experiment_id,
    )


class RunBusy(VlpUserError):
    """Another process is working on the run (exit 2)."""


def claim_for_resume(layout: RunLayout, wait: bool, announce=print):
    """The run's resume lease, held by this process; raises RunBusy if another `--resume` holds it or a training
    job of the run is still live, unless `wait` (then waits for them to end)."""
    from vlp.platform.storage.lease import LeaseHeldError, RunLease, wait_until_free

    claim = RunLease(layout.resume_lease, uuid.uuid4().hex)
    training = RunLease(layout.training_lease, "")
    while True:
        try:
            claim.acquire()
        except LeaseHeldError as held:
            if not wait:
                raise RunBusy(f"run {layout.run_id} is already being resumed by {held.holder.describe()}: "
                              f"wait for it with `vlp run --resume {layout.run_id} --wait`") from None
            wait_until_free(claim, on_wait=lambda holder: announce(f"waiting: run {layout.run_id} is being resumed by {holder.describe()}"))
            continue
        holder = training.holder()
        if holder is None:
            return claim
        claim.release()
        if not wait:
            raise RunBusy(f"run {layout.run_id} is still being trained by {holder.describe()}: "
                          f"wait for that job with `vlp run --resume {layout.run_id} --wait`, or stop it")
        announce(f"waiting: run {layout.run_id} is still being trained by {holder.describe()}")
        wait_until_free(training)
        claim = RunLease(layout.resume_lease, claim.token)


@dataclass(frozen=True)
class DetachedRun:
    run_key: str
    pid: int
    started: int
    log: str
    host: str
    run_id: str | None = None
    exit_code: int | None = None

    def alive(self) -> bool:
        from vlp.platform.launch.ownership import is_alive

        return is_alive(self.pid, self.started)


def detached_dir() -> Path:
    return vlp_home() / "detached"


def read_detached(run_key: str) -> DetachedRun | None:
    try:
        return DetachedRun(**json.loads((detached_dir() / f"{run_key}.json").read_text()))
    except FileNotFoundError:
        return None


def _write_detached(record: DetachedRun) -> None:
    from vlp.platform.storage.local import LocalStorage

    LocalStorage().write_bytes(str(detached_dir() / f"{record.run_key}.json"), json.dumps(asdict(record)).encode())


def run_detached(spec: ExperimentSpec, runtime: RuntimeContext, claim=None, started_timeout: float = 600.0) -> DetachedRun:
    """Start the pipeline in a background process of its own session; return once its MLflow run exists.
    `claim`: a resume lease this process took; the background process holds and releases it."""
    import socket

    from vlp.platform.backends.forked_steps import fork
    from vlp.platform.launch.ownership import process_start_time
    from vlp.platform.tracking.runs import find_run_by_key

    detached_dir().mkdir(parents=True, exist_ok=True)
    log_path = detached_dir() / f"{runtime.run_key}.log"
    sys.stdout.flush()
    sys.stderr.flush()
    pid = fork()
    if pid == 0:
        _background(spec, runtime, claim, log_path)
    record = DetachedRun(run_key=runtime.run_key, pid=pid, started=process_start_time(pid) or 0, log=str(log_path), host=socket.gethostname())
    deadline = time.monotonic() + started_timeout
    while time.monotonic() < deadline:
        run_id = find_run_by_key(runtime.run_key, runtime.tracking_uri)
        if run_id is not None:
            return DetachedRun(**{**asdict(record), "run_id": run_id})
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            return DetachedRun(**{**asdict(record), "exit_code": os.waitstatus_to_exitcode(status)})
        time.sleep(0.5)
    return record


def _background(spec: ExperimentSpec, runtime: RuntimeContext, claim, log_path: Path) -> None:
    """The forked side: a session of its own, output to the log; never returns."""
    import traceback

    from vlp.platform.launch.ownership import process_start_time

    code = 1
    try:
        os.setsid()
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        record = DetachedRun(run_key=runtime.run_key, pid=os.getpid(), started=process_start_time(os.getpid()) or 0, log=str(log_path),
                             host=os.uname().nodename)
        _write_detached(record)
        from vlp.platform.backends.forked_steps import _fresh_database_connections

        _fresh_database_connections()  # the SQLite connections the foreground process opened stay its own
        if claim is not None:
            claim.acquire()  # the same token: the lease passes from the foreground process to this one
            claim.keep_alive(lambda lost: logging.getLogger(__name__).warning("%s", lost))
        try:
            from vlp.platform.backends.step_logs import StepLogs

            # Each step's log as in the foreground, and every line in the background log that `runs attach` follows.
            step_logs = StepLogs(log_dir(runtime.run_key), echo=sys.stdout)
            # `vlp runs attach` draws the steps from this file as `vlp run` draws them from its own StepLogs.
            step_logs.on_change = lambda: write_step_states(step_logs)
            outcome = run_experiment(spec, runtime, step_logs=step_logs)
        finally:
            if claim is not None:
                claim.release()
        print(f"background run {outcome.run_id} ended {outcome.status}", flush=True)
        code = 0 if outcome.status == "FINISHED" else 1
        _write_detached(DetachedRun(**{**asdict(record), "run_id": outcome.run_id, "exit_code": code}))
    except BaseException:  # noqa: BLE001 - the background run's traceback is its log
        traceback.print_exc()
    finally:
        os._exit(code)


STEP_STATES = "steps.json"


def write_step_states(step_logs) -> None:
    """Each step's name, log, exit code and seconds so far, in `<log folder>/steps.json` (replaced whole each time)."""
    from vlp.platform.storage.local import LocalStorage

    states = [{"name": record.name, "log": str(record.log), "exit_code": record.exit_code, "seconds": record.seconds} for record in step_logs.steps]
    LocalStorage().write_bytes(str(step_logs.directory / STEP_STATES), json.dumps({"at": time.time(), "steps": states}).encode())


def read_step_states(directory: Path) -> list[dict]:
    """What `write_step_states` wrote, a running step's seconds brought up to now ([] before the first step)."""
    try:
        document = json.loads((directory / STEP_STATES).read_text())
    except (OSError, ValueError):
        return []
    since = max(0.0, time.time() - document["at"])
    return [{**state, "seconds": state["seconds"] + (since if state["exit_code"] is None else 0.0)} for state in document["steps"]]


@dataclass
class Attached:
    """A background run `vlp runs attach` follows."""

    run_id: str
    run_key: str
    experiment: str
    tracking_uri: str
    detached: DetachedRun

    @property
    def log_dir(self) -> Path:
        return log_dir(self.run_key)

    def spec(self) -> ExperimentSpec | None:
        """The experiment the run started with (as its first step stored it), or None if it is not there yet."""
        from vlp.platform.profiles import local_runtime
        from vlp.platform.spec import spec_from_dict
        from vlp.platform.storage import open_storage

        spec_uri = RunLayout(local_runtime().storage_root, self.run_id).spec
        try:
            return spec_from_dict(json.loads(open_storage(spec_uri).read_bytes(spec_uri)), source=spec_uri)
        except Exception:  # a run stored elsewhere (`storage_root:` in the file) or not started yet: shown without it
            return None


def find_detached(run_id: str) -> Attached:
    """The background run `run_id`, or a VlpUserError saying why it cannot be followed."""
    from mlflow.exceptions import MlflowException

    from vlp.platform.state import default_tracking_uri
    from vlp.platform.tracking.runs import client

    tracking_uri = default_tracking_uri()
    try:
        run = client(tracking_uri).get_run(run_id)
    except MlflowException:
        raise VlpUserError(f"runs attach {run_id}: no such run (see `vlp runs list`)") from None
    run_key = run.data.tags.get("vlp.run_key", "")
    detached = read_detached(run_key) if run_key else None
    if detached is None:
        raise VlpUserError(f"runs attach {run_id}: the run was not started with `vlp run --detach` on this machine; "
                           f"it is {run.info.status} (`vlp runs show {run_id}`)")
    experiment = client(tracking_uri).get_experiment(run.info.experiment_id).name
    return Attached(run_id, run_key, experiment, tracking_uri, detached)


def follow_detached(run: "str | Attached", out=sys.stdout, poll: float = 0.5, on_poll=None) -> tuple[str, RunOutcome]:
    """`vlp runs attach RUN_ID`: follow the background run (its id, or what `find_detached` found) until its process
    ends, then return (experiment name, outcome). `out`: where to copy its raw log from the start (None: not at all); `on_poll(attached)` is called on
    each poll and once at the end (the console view draws the steps from the log folder then). Ctrl-C
    (KeyboardInterrupt) stops following and leaves the run alone."""
    attached = find_detached(run) if isinstance(run, str) else run
    run_id, detached = attached.run_id, attached.detached
    with open(detached.log, errors="replace") as log:
        while True:
            alive = detached.alive()
            for line in log:
                if out is not None:
                    print(line, end="", file=out, flush=True)
            if on_poll is not None:
                on_poll(attached)
            if not alive:
                break
            time.sleep(poll)
    outcome = read_outcome(attached.tracking_uri, attached.run_key)
    outcome.logs = str(attached.log_dir)
    if outcome.status == "RUNNING":
        outcome.error = (f"the background process (pid {detached.pid}) is gone and the run never finished: "
                         f"continue it with `vlp run --resume {run_id}`")
    return attached.experiment, outcome


def run_sweep(spec: ExperimentSpec, runtime: RuntimeContext, on_trial=None):
    """The sweep pipeline on this machine (kfp.local): the trials run `sweep.parallelism` at a time under one parent
    MLflow run, each its child; the pipeline's last step tags the best and logs the table. Every step's log goes to
    `$VLP_HOME/logs/<sweep run key>/` (a trial's as `trial-N-<step>.log`). `on_trial(row, total)` is called as each
    trial ends. Returns `vlp.platform.tracking.sweeps.SweepOutcome`."""
    from vlp.pipelines.workload_pipelines import pipeline_arguments, pipeline_for
    from vlp.platform.backends.step_logs import StepLogs
    from vlp.platform.launch.ownership import OWNER_PIDS_ENV, owner_entry
    from vlp.platform.tracking import sweeps

    os.environ[OWNER_PIDS_ENV] = owner_entry(os.getpid())
    directory = log_dir(runtime.run_key)
    total = len(spec.sweep.assignments())
    trial_ends = {f"trial-{number}-finish-run": number for number in range(1, total + 1)}
    announced: set[int] = set()

    def logs_of(number: int) -> str:
        return str(directory / f"trial-{number}-*.log")

    def announce_ended_trials() -> None:
        for record in list(step_logs.steps):
            number = trial_ends.get(record.name)
            if number is None or record.exit_code is None or number in announced:
                continue
            announced.add(number)
            on_trial(sweeps.read_sweep(spec, runtime, logs_of).trials[number - 1], total)

    step_logs = StepLogs(directory, on_change=announce_ended_trials if on_trial is not None else None)
    pipeline = pipeline_for(spec, runtime.image)
    with _kfp_local_parallelism(spec.sweep.parallelism):
        run_pipeline_locally(pipeline, pipeline_arguments(spec, runtime), vlp_home() / "kfp-local", quiet=True,
                             tracking_uri=runtime.tracking_uri, step_logs=step_logs)
    outcome = sweeps.read_sweep(spec, runtime, logs_of)
    if outcome.parent_run_id is not None:
        _upload_logs(runtime.tracking_uri, outcome.parent_run_id, directory)
    return outcome


@contextlib.contextmanager
def _kfp_local_parallelism(parallelism: int):
    """kfp.local (2.17) runs at most two ParallelFor iterations at a time whatever the loop's `parallelism`
    (`ParallelExecutor.conservative_max`, against thread growth in nested loops). A sweep's loop is not nested in
    another, so the cap is lifted to the sweep's `parallelism` while it runs (tests/unit/pipelines fails if kfp
    moves that attribute)."""
    from kfp.local.orchestrator.enhanced_dag_orchestrator import ParallelExecutor

    original = ParallelExecutor.__init__

    def __init__(executor, max_workers=None):
        original(executor, max_workers)
        executor.conservative_max = max(executor.conservative_max, parallelism)

    ParallelExecutor.__init__ = __init__
    try:
        yield
    finally:
        ParallelExecutor.__init__ = original
