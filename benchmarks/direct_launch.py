"""The orchestration benchmark's baseline: what a researcher's launch script does, as its own fresh process.

`python -m vlp.benchmarks.direct_launch --spec-json FILE --train-uri URI --home DIR` opens an MLflow run,
stores the spec where the workers read it, and starts the training module under torchrun in the spec's own
shape: one `torchrun --standalone` for one node; for `nodes` > 1, one torchrun agent per node meeting at a c10d
rendezvous on 127.0.0.1 (as TorchX's local scheduler does). No pipeline, no TorchX, no steps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

WORKER_MODULE = "vlp.workloads.train.main"


def torchrun_commands(nodes: int, procs_per_node: int, port: int, worker_args: list[str]) -> list[list[str]]:
    torchrun = str(Path(sys.executable).parent / "torchrun")
    if nodes == 1:
        shape = ["--standalone", "--nnodes", "1", "--nproc_per_node", str(procs_per_node)]
        return [[torchrun, *shape, "-m", WORKER_MODULE, *worker_args]]
    shape = ["--nnodes", str(nodes), "--nproc_per_node", str(procs_per_node), "--rdzv_backend", "c10d",
             "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", f"direct-{port}"]
    return [[torchrun, *shape, "-m", WORKER_MODULE, *worker_args] for _ in range(nodes)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec-json", type=Path, required=True)
    parser.add_argument("--train-uri", required=True)
    parser.add_argument("--home", type=Path, required=True)
    args = parser.parse_args(argv)

    from vlp.pipelines.steps.launching import threads_per_process
    from vlp.platform.launch.torchx_launcher import free_port
    from vlp.platform.layout import RunLayout
    from vlp.platform.spec import spec_from_dict
    from vlp.platform.storage import open_storage
    from vlp.platform.tracking.runs import start_run

    spec_document = json.loads(args.spec_json.read_text())
    spec = spec_from_dict(spec_document, source=str(args.spec_json))
    tracking_uri = f"sqlite:///{args.home / 'mlflow.db'}"
    run_id = start_run("bench-direct", "direct", {}, {}, tracking_uri)
    storage_root = str(args.home / "storage")
    layout = RunLayout(storage_root, run_id)
    open_storage(layout.spec).write_bytes(layout.spec, json.dumps(spec_document).encode())
    worker_args = ["--storage-root", storage_root, "--run-id", run_id, "--tracking-uri", tracking_uri, "--train-data", args.train_uri]
    env = {**os.environ, "VLP_THREADS_PER_PROC": str(threads_per_process(spec.resources.world_size))}
    agents = [subprocess.Popen(command, env=env) for command in
              torchrun_commands(spec.resources.nodes, spec.resources.procs_per_node, free_port(), worker_args)]
    codes = [agent.wait() for agent in agents]
    return next((code for code in codes if code), 0)


if __name__ == "__main__":
    sys.exit(main())
