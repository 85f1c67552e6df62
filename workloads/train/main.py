"""torchrun entry point: `python -m vlp.workloads.train.main --run-dir URI --tracking-uri URI`.

Parse, build, train, close. Everything else comes from the spec that the pipeline stored beside the run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from vlp.platform.layout import RunLayout
from vlp.platform.spec import spec_from_dict
from vlp.platform.storage import open_storage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="vlp pretraining worker (started by torchrun)")
    parser.add_argument("--storage-root", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--train-data", required=True, help="dataset URI holding the training shards")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # MLflow's HTTP client retries a request for ~4 minutes with backoff up to 2 minutes, so after an outage
    # metrics would arrive a minute late. The tracker retries whole batches itself with a short backoff.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")

    from vlp.platform.launch.ownership import stop_when_owner_is_gone
    from vlp.platform.tracking.mlflow_tracker import MlflowTracker
    from vlp.workloads.data.shards import list_shards
    from vlp.workloads.train.distributed import close_distributed, init_distributed
    from vlp.workloads.train.lease import hold_training_lease
    from vlp.workloads.train.preemption import PREEMPTED_EXIT_CODE, Preempted
    from vlp.workloads.train.trainer import PretrainTrainer, TrainInputs

    # torchrun's agent normally stops this worker when the job's owner dies; this is the fallback if it cannot.
    stop_when_owner_is_gone(term_after=15.0, kill_after=60.0)
    layout = RunLayout(args.storage_root, args.run_id)
    spec = spec_from_dict(json.loads(open_storage(layout.spec).read_bytes(layout.spec)), source=layout.spec)
    # One job per run: take the run's training lease before anything is written (all ranks refuse together).
    lease = hold_training_lease(layout, init_distributed(spec.train.threads_per_proc))
    inputs = TrainInputs(
        layout=layout,
        train_shards=list_shards(args.train_data),
        tracker_factory=lambda: MlflowTracker(args.run_id, args.tracking_uri),
        tracking_uri=args.tracking_uri,
        train_uri=args.train_data,
    )
    trainer = PretrainTrainer(spec, inputs)
    if lease is not None and lease.taken_over is not None:
        takeover = f"took over the training lease from {lease.taken_over.describe()}"
        logging.getLogger("vlp.train").warning("%s", takeover)
        trainer.tracker.set_tags({"vlp.lease.takeover": takeover})
    try:
        summary = trainer.train()
        logging.getLogger("vlp.train").info("finished: %s", summary)
    except Preempted as stopped:
        logging.getLogger("vlp.train").warning("%s", stopped)
        sys.exit(PREEMPTED_EXIT_CODE)
    except BaseException:
        # Deliver what was logged before the failure (bad-data counts, the last losses): they explain it.
        trainer.tracker.close(timeout=30.0)
        raise
    finally:
        if lease is not None:
            lease.release()
        close_distributed()


if __name__ == "__main__":
    main()
