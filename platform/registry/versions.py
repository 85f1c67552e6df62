"""Register a model version with the evidence a reviewer needs (metrics, spec hash, git commit, gates) and
promote versions to aliases only when their gates pass."""

from __future__ import annotations

import getpass
import json
import time
from dataclasses import dataclass

from vlp.platform.errors import GateFailed, VlpUserError
from vlp.platform.registry.gates import GateResult, check_gates
from vlp.platform.tracking.runs import client

METRIC_TAG_PREFIX = "metric."


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str


def tag_version(name: str, version: str, metrics: dict[str, float], gates: list[str], spec_hash: str, git_commit: str, alias: str, tracking_uri: str | None = None) -> None:
    mlflow_client = client(tracking_uri)
    tags = {"vlp.spec_hash": spec_hash, "vlp.git_commit": git_commit, "vlp.gates": json.dumps(gates)}
    tags.update({f"{METRIC_TAG_PREFIX}{key}": f"{value:.6g}" for key, value in metrics.items()})
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(name, version, key, value)
    mlflow_client.set_registered_model_alias(name, alias, version)


def version_metrics(name: str, version: str, tracking_uri: str | None = None) -> tuple[dict[str, float], list[str]]:
    from mlflow.exceptions import MlflowException

    try:
        model_version = client(tracking_uri).get_model_version(name, version)
    except MlflowException:
        raise VlpUserError(f"model {name} version {version} does not exist (see `vlp models list`)") from None
    metrics = {key[len(METRIC_TAG_PREFIX):]: float(value) for key, value in model_version.tags.items() if key.startswith(METRIC_TAG_PREFIX)}
    return metrics, json.loads(model_version.tags.get("vlp.gates", "[]"))


def promote(name: str, version: str, alias: str, force: bool = False, tracking_uri: str | None = None) -> list[GateResult]:
    """Point `alias` at the version if every gate passes (or `force`); raise GateFailed otherwise."""
    metrics, gates = version_metrics(name, version, tracking_uri)
    results = check_gates(gates, metrics)
    failed = [result for result in results if not result.passed]
    if failed and not force:
        raise GateFailed(f"refused to promote {name} v{version} to @{alias}: " + "; ".join(result.describe() for result in failed))
    mlflow_client = client(tracking_uri)
    mlflow_client.set_registered_model_alias(name, alias, version)
    audit = json.dumps({"version": version, "by": getpass.getuser(), "at": int(time.time()), "forced": bool(failed)})
    mlflow_client.set_model_version_tag(name, version, f"vlp.promoted.{alias}", audit)
    mlflow_client.set_registered_model_tag(name, f"vlp.alias.{alias}", audit)
    return results
