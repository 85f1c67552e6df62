"""Train step: launch the pretraining workload under torchrun through TorchX and wait for it."""

from __future__ import annotations

from vlp.pipelines.steps.context import decode, storage_root
from vlp.pipelines.steps.launching import worker_launch_request
from vlp.platform.launch.torchx_launcher import LaunchFailed, LaunchRequest, launch_and_wait
from vlp.platform.layout import RunLayout
from vlp.platform.tracking.runs import client

WORKER_MODULE = "vlp.workloads.train.main"


def launch_request(spec_json: str, runtime_json: str, run_id: str, train_uri: str) -> LaunchRequest:
    spec, runtime = decode(spec_json, runtime_json)
    args = [
        "--storage-root", storage_root(spec, runtime),
        "--run-id", run_id,
        "--tracking-uri", runtime.tracking_uri,
        "--train-data", train_uri,
    ]
    return worker_launch_request(spec, runtime, WORKER_MODULE, args, "train")


def run(spec_json: str, runtime_json: str, run_id: str, train_uri: str) -> str:
    """Returns the URI of the final checkpoint."""
    request = launch_request(spec_json, runtime_json, run_id, train_uri)
    result = launch_and_wait(request)
    spec, runtime = decode(spec_json, runtime_json)
    if not result.succeeded:
        message = f"training job {result.app_handle} failed: {result.reason}"
        # The pipeline's exit handler only learns that a task failed; the run keeps the reason.
        client(runtime.tracking_uri).set_tag(run_id, "vlp.error", message[:4000])
        raise LaunchFailed(message)
    from vlp.workloads.train.checkpoint import Checkpointer

    latest = Checkpointer(RunLayout(storage_root(spec, runtime), run_id).checkpoints).latest_uri()
    if latest is None:
        raise LaunchFailed(f"training job {result.app_handle} succeeded but wrote no checkpoint")
    return latest
