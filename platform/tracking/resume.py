"""`vlp run --resume RUN_ID`: find what a run needs to continue in the same MLflow run.

A run is continued by running its pipeline again with the same run key: the start-run step finds the run by
that key and reopens it, prepare-data reuses the dataset, and training resumes from the run's latest
checkpoint, so its step counter (and metric history) carries on. The experiment is the one the run stored
beside its checkpoints, not a file that may have changed since.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from vlp.platform.errors import VlpUserError
from vlp.platform.layout import RunLayout
from vlp.platform.spec import ExperimentSpec, spec_from_dict
from vlp.platform.storage import open_storage
from vlp.platform.tracking.uris import redacted

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class ResumePlan:
    run_id: str
    run_key: str
    status: str
    spec: ExperimentSpec


def plan_resume(run_id: str, tracking_uri: str, default_storage_root: str) -> ResumePlan:
    if not RUN_ID.match(run_id):
        raise VlpUserError(f"--resume {run_id!r}: not an MLflow run id (32 hex characters; see `vlp runs list`)")
    _refuse_missing_local_store(tracking_uri, run_id)
    from mlflow.exceptions import MlflowException

    from vlp.platform.tracking.runs import client

    try:
        run = client(tracking_uri).get_run(run_id)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise VlpUserError(f"--resume {run_id}: no such run in {redacted(tracking_uri)} (see `vlp runs list`)") from None
        raise
    if run.info.status == "FINISHED":
        raise VlpUserError(f"--resume {run_id}: the run already FINISHED; start a new run with `vlp run FILE`")
    run_key = run.data.tags.get("vlp.run_key")
    if not run_key:
        raise VlpUserError(f"--resume {run_id}: not a run started by vlp (it has no vlp.run_key tag)")
    storage_root = run.data.params.get("storage_root") or default_storage_root
    spec_uri = RunLayout(storage_root, run_id).spec
    storage = open_storage(spec_uri)
    if not storage.exists(spec_uri):
        raise VlpUserError(f"--resume {run_id}: the run's experiment is missing at {spec_uri}; it cannot be continued")
    spec = spec_from_dict(json.loads(storage.read_bytes(spec_uri)), source=spec_uri)
    return ResumePlan(run_id=run_id, run_key=run_key, status=run.info.status, spec=spec)


def _refuse_missing_local_store(tracking_uri: str, run_id: str) -> None:
    """Opening a SQLite store creates it: say there are no runs instead of leaving an empty database behind."""
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri[len("sqlite:///"):].split("?", 1)[0])
        if not path.is_file():
            raise VlpUserError(f"--resume {run_id}: no runs recorded yet ({path} does not exist; is VLP_HOME set as when the run started?)")
