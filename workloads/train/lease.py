"""The training job's hold on its run: rank 0 takes the run's training lease before training starts and renews
it while the job lives, so that a second job on the same run (a `--resume` next to a job that still runs, a
retried step on a cluster) refuses to start instead of training beside it. See vlp.platform.storage.lease."""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid

from vlp.platform.layout import RunLayout
from vlp.platform.storage.lease import JOB_TOKEN_ENV, LeaseHeldError, RunLease
from vlp.workloads.train.distributed import DistContext, gather_objects

log = logging.getLogger(__name__)

LEASE_HELD_EXIT_CODE = 2
LEASE_LOST_EXIT_CODE = 75


def job_token() -> str:
    """Shared by every rank and every torchrun restart of one job."""
    return os.environ.get(JOB_TOKEN_ENV) or os.environ.get("TORCHELASTIC_RUN_ID") or uuid.uuid4().hex


def hold_training_lease(layout: RunLayout, dist: DistContext) -> RunLease | None:
    """Rank 0 takes the lease and keeps it alive; if another job holds it, every rank prints the holder in one
    line and exits 2. Returns the lease on rank 0 (its `taken_over` names an expired holder it replaced), None
    elsewhere."""
    lease, error = None, None
    if dist.is_main:
        lease = RunLease(layout.training_lease, job_token())
        try:
            lease.acquire()
        except LeaseHeldError as held:
            error = held
        except Exception as err:  # noqa: BLE001 - every rank must learn of it, or the others wait for rank 0 forever
            error = RuntimeError(f"could not take the training lease {layout.training_lease}: {type(err).__name__}: {err}")
    error = gather_objects(error)[0]
    if isinstance(error, LeaseHeldError):
        _no_restart(error)
    if error is not None:
        raise error
    if lease is not None:
        lease.keep_alive(_stop_at_once)
    return lease


def _no_restart(refusal: LeaseHeldError) -> None:
    """Refuse in one line (the launcher reports it as the job's cause), and keep torchrun from restarting this
    worker into the same refusal: torchrun gets SIGTERM, stops the other workers (which refuse too) and exits."""
    print(f"{type(refusal).__module__}.{type(refusal).__name__}: {refusal}", file=sys.stderr, flush=True)
    if os.environ.get("TORCHELASTIC_RUN_ID"):
        os.kill(os.getppid(), signal.SIGTERM)
    raise SystemExit(LEASE_HELD_EXIT_CODE)


def _stop_at_once(lost: Exception) -> None:
    # Another job holds the run now: writing even one more checkpoint or metric would interleave with it.
    log.error("stopping without a checkpoint: %s", lost)
    logging.shutdown()
    os._exit(LEASE_LOST_EXIT_CODE)
