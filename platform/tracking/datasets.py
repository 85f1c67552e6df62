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
        mlflow_client.log_inputs(run_id, datasets=inputs)
