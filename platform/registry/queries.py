"""Read registered models back as plain dicts (for `vlp models list`)."""

from __future__ import annotations

from vlp.platform.registry.versions import METRIC_TAG_PREFIX
from vlp.platform.tracking.headline import headline_values
from vlp.platform.tracking.runs import client, store_exists


def model_versions() -> list[dict]:
    if not store_exists():
        return []
    mlflow_client = client()
    rows = []
    for model in mlflow_client.search_registered_models():
        aliases_by_version: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            aliases_by_version.setdefault(str(version), []).append(alias)
        for version in mlflow_client.search_model_versions(f"name = '{model.name}'"):
            metrics = {k[len(METRIC_TAG_PREFIX):]: float(v) for k, v in version.tags.items() if k.startswith(METRIC_TAG_PREFIX)}
            rows.append({
                "name": model.name,
                "version": str(version.version),
                "aliases": sorted(aliases_by_version.get(str(version.version), [])),
                "run_id": version.run_id,
                "metrics": metrics,
                "headline": headline_values(version.tags, metrics),
                "spec_hash": version.tags.get("vlp.spec_hash", ""),
            })
    return sorted(rows, key=lambda row: (row["name"], int(row["version"])))
