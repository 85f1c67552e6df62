"""The datasets a run trained and was evaluated on, as MLflow dataset inputs (the UI's "Datasets used"): named
after their folder, with their manifest's sha256 as the digest, so two runs on the same data show the same one."""

from __future__ import annotations

import hashlib
import json

from vlp.platform.storage import join, open_storage

MANIFEST = "manifest.json"


def dataset_digest(uri: str) -> tuple[str, dict]:
    """(sha256 of the dataset's manifest.json, what the manifest says); without a manifest, of its shard list."""
    manifest_uri = join(uri, MANIFEST)
    storage = open_storage(manifest_uri)
    if storage.exists(manifest_uri):
        content = storage.read_bytes(manifest_uri)
        try:
            described = json.loads(content)
        except ValueError:
            described = {}
        return hashlib.sha256(content).hexdigest(), described if isinstance(described, dict) else {}
    listing = "\n".join(sorted(name for name in storage.list(uri.rstrip("/") + "/") if name.endswith(".tar"))).encode()
    return hashlib.sha256(listing).hexdigest(), {}


def log_datasets(mlflow_client, run_id: str, datasets: dict[str, str]) -> None:
    """`datasets`: context (`train`, `eval`) -> URI; empty URIs are skipped."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    inputs = []
    for context, uri in datasets.items():
        if not uri:
            continue
        digest, manifest = dataset_digest(uri)
        profile = {key: manifest[key] for key in ("samples", "shards", "classes") if key in manifest}
        dataset = Dataset(name=uri.rstrip("/").rsplit("/", 1)[-1], digest=digest[:16], source_type="s3" if uri.startswith("s3://") else "local",
                          source=json.dumps({"uri": uri}), profile=json.dumps(profile, default=str) if profile else None)
        inputs.append(DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)]))
    if inputs:
        _log_inputs(mlflow_client, run_id, inputs)


def _log_inputs(mlflow_client, run_id: str, inputs: list, attempts: int = 4) -> None:
    """MLflow's store adds a dataset to the experiment with a check-then-insert: two runs logging the same dataset
    at once (a sweep's trials) make one of them fail on the unique key. Tried again it finds the row made; the
    record of the inputs never fails the step."""
    import logging
    import random
    import time

    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            mlflow_client.log_inputs(run_id, datasets=inputs)
            return
        except MlflowException as err:
            if "IntegrityError" not in str(err) and err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            if attempt == attempts - 1:
                logging.getLogger(__name__).warning("run %s: the dataset inputs were not recorded (%s)", run_id, str(err).splitlines()[0][:200])
                return
            time.sleep(random.uniform(0.1, 0.5) * (attempt + 1))
