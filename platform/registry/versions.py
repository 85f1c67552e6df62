"""Register a model version with the evidence a reviewer needs (metrics, spec hash, git commit, gates) and
promote versions to aliases only when their gates pass."""

from __future__ import annotations

import getpass
import json
import random
import time
import uuid
from dataclasses import dataclass

from vlp.platform.errors import GateFailed, VlpUserError
from vlp.platform.registry.gates import GateResult, check_gates
from vlp.platform.teams import current_user
from vlp.platform.tracking.runs import client

METRIC_TAG_PREFIX = "metric."
PROMOTED_TAG_PREFIX = "vlp.promoted."  # on a version: the audit of its promotion to an alias
ALIAS_TAG_PREFIX = "vlp.alias."  # on the model: the audit of the version the alias points to now
EVENT_TAG_PREFIX = "vlp.promotion."  # on a version: one tag per promotion, never overwritten (`vlp models history`)


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


@dataclass(frozen=True)
class Promotion:
    gates: list[GateResult]
    alias_version: str
    """The version the alias points to afterwards: another one if a concurrent promotion came last."""


def promote(name: str, version: str, alias: str, force: bool = False, tracking_uri: str | None = None) -> Promotion:
    """Point `alias` at the version if the caller may promote the model and every gate passes (or `force`).

    Where the server enforces permissions the caller needs MANAGE on the model as one of its team's promoters
    (PermissionRefused otherwise); a failed gate raises GateFailed. Both are checked before anything is written.

    The registry has no compare-and-set, so two promotions at once could leave the alias on one version and
    the model's audit tag describing the other. The audit therefore goes on the version first, then the alias
    moves, then `settle_alias_audit` makes the model's tag a copy of the audit of whichever version holds the
    alias, re-checking until alias and tag agree. Every writer re-checks after its own last write, so the last
    one leaves them consistent; the earlier promotion is superseded (last writer wins, as with any alias move).
    Each promotion also leaves its own event tag on the version, so the history keeps superseded ones too.
    """
    from vlp.platform.state import default_tracking_uri
    from vlp.platform.tracking.permissions import access_for, lower_creator_grant, require_promote_right

    access = access_for(tracking_uri or default_tracking_uri())
    if access is not None:
        require_promote_right(access, name)
    metrics, gates = version_metrics(name, version, tracking_uri)
    results = check_gates(gates, metrics)
    failed = [result for result in results if not result.passed]
    if failed and not force:
        raise GateFailed(f"refused to promote {name} v{version} to @{alias}: " + "; ".join(result.describe() for result in failed))
    mlflow_client = client(tracking_uri)
    event_id = uuid.uuid4().hex[:12]
    audit = json.dumps({
        "version": version, "from": _alias_holder(mlflow_client, name, alias), "alias": alias,
        "by": access.username if access is not None else (current_user() or getpass.getuser()),
        "at": time.time(), "forced": bool(failed), "id": event_id,
        "gates": [{"gate": r.gate, "value": r.value, "passed": r.passed} for r in results],
    })
    _write(lambda: mlflow_client.set_model_version_tag(name, version, f"{PROMOTED_TAG_PREFIX}{alias}", audit))
    _write(lambda: mlflow_client.set_registered_model_alias(name, alias, version))
    _write(lambda: mlflow_client.set_model_version_tag(name, version, f"{EVENT_TAG_PREFIX}{event_id}", audit))
    holder = settle_alias_audit(mlflow_client, name, alias)
    if access is not None:
        lower_creator_grant(access, name)
    return Promotion(gates=results, alias_version=holder)


def _alias_holder(mlflow_client, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(mlflow_client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def promotion_history(name: str, tracking_uri: str | None = None) -> list[dict]:
    """Every promotion of the model's versions, oldest first: who, when, from which version to which, gate results."""
    mlflow_client = client(tracking_uri)
    versions = mlflow_client.search_model_versions(f"name = '{name}'")
    if not versions:
        from mlflow.exceptions import MlflowException

        try:
            mlflow_client.get_registered_model(name)
        except MlflowException:
            raise VlpUserError(f"registered model {name!r} does not exist (see `vlp models list`)") from None
    events = [json.loads(value) for version in versions for key, value in version.tags.items() if key.startswith(EVENT_TAG_PREFIX)]
    return sorted(events, key=lambda event: event["at"])


def settle_alias_audit(mlflow_client, name: str, alias: str, rounds: int = 50) -> str:
    """Make the model's `vlp.alias.<alias>` tag the audit of the version the alias points to; returns that version."""
    for _ in range(rounds):
        holder = str(mlflow_client.get_model_version_by_alias(name, alias).version)
        audit = mlflow_client.get_model_version(name, holder).tags.get(f"{PROMOTED_TAG_PREFIX}{alias}") or json.dumps({"version": holder})
        if mlflow_client.get_registered_model(name).tags.get(f"{ALIAS_TAG_PREFIX}{alias}") != audit:
            _write(lambda: mlflow_client.set_registered_model_tag(name, f"{ALIAS_TAG_PREFIX}{alias}", audit))
            # A concurrent promotion may be between its writes: give it a moment, then look again.
            time.sleep(random.uniform(0.02, 0.2))
            continue
        if str(mlflow_client.get_model_version_by_alias(name, alias).version) == holder:
            return holder
    raise RuntimeError(f"{name}@{alias}: alias and audit tag kept changing under concurrent promotions; run `vlp promote` again")


def _write(call, attempts: int = 8) -> None:
    """A registry write that lost a race inside the store (two upserts of one tag or alias row: an integrity
    error; SQLite busy) is tried again; every write here is idempotent, and the settle loop re-checks anyway."""
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            call()
            return
        except MlflowException as err:
            lost_race = err.error_code in ("TEMPORARILY_UNAVAILABLE", "RESOURCE_ALREADY_EXISTS") or "IntegrityError" in str(err)
            if not lost_race or attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0.05, 0.3) * (attempt + 1))


def alias_audit(name: str, alias: str, tracking_uri: str | None = None) -> dict | None:
    """The audit record of the version `alias` points to, as the model's tag holds it (None if never promoted)."""
    tag = client(tracking_uri).get_registered_model(name).tags.get(f"{ALIAS_TAG_PREFIX}{alias}")
    return json.loads(tag) if tag else None
