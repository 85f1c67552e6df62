"""The training half of `vlp run` for one experiment: the start-run and pretrain pipeline steps, run as
plain functions so a test can inject faults while the TorchX job trains. Prints `RUN <id>` as soon as the
MLflow run exists and `CHECKPOINT <uri>` when training has finished.

    python train_job.py SPEC_JSON_FILE RUNTIME_JSON_FILE TRAIN_URI
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    spec_json, runtime_json, train_uri = Path(sys.argv[1]).read_text(), Path(sys.argv[2]).read_text(), sys.argv[3]
    from vlp.pipelines.steps import pretrain, start_run

    run_id = start_run.run(spec_json, runtime_json)
    print(f"RUN {run_id}", flush=True)
    print(f"CHECKPOINT {pretrain.run(spec_json, runtime_json, run_id, train_uri)}", flush=True)


if __name__ == "__main__":
    main()
