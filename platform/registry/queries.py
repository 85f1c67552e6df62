"""Read registered models back as plain dicts (for `vlp models list`)."""

from __future__ import annotations

from vlp.platform.registry.versions import METRIC_TAG_PREFIX
from vlp.platform.tracking.headline import headline_values
from vlp.platform.tracking.runs import client, store_exists


def model_versions(tracking_uri: str | None = None) -> list[dict]:
    """Every version of every registered model: through the REST API of a tracking server or of the local store's
    `vlp ui` when one serves it (no MLflow import), else through MLflow's client."""
    from vlp.platform.state import default_tracking_uri
    from vlp.platform.tracking.queries import rest_url

    uri = tracking_uri or default_tracking_uri()
    if not store_exists(uri):
        return []
    served = rest_url(uri)
    if served is not None:
        from vlp.platform.tracking import rest

        rows = [_row(version["name"], str(version["version"]), version.get("run_id", ""),
                     {tag["key"]: tag["value"] for tag in version.get("tags", [])},
                     [alias["alias"] for alias in version["model_aliases"] if str(alias["version"]) == str(version["version"])])
                for version in rest.search_model_versions(served)]
    else:
        mlflow_client = client(uri)
        rows = []
        for model in mlflow_client.search_registered_models():
            for version in mlflow_client.search_model_versions(f"name = '{model.name}'"):
                aliases = [alias for alias, target in (model.aliases or {}).items() if str(target) == str(version.version)]
                rows.append(_row(model.name, str(version.version), version.run_id, dict(version.tags), aliases))
    return sorted(rows, key=lambda row: (row["name"], int(row["version"])))


def _row(name: str, version: str, run_id: str, tags: dict[str, str], aliases: list[str]) -> dict:
    metrics = {k[len(METRIC_TAG_PREFIX):]: float(v) for k, v in tags.items() if k.startswith(METRIC_TAG_PREFIX)}
    return {"name": name, "version": version, "aliases": sorted(aliases), "run_id": run_id, "metrics": metrics,
            "headline": headline_values(tags, metrics), "spec_hash": tags.get("vlp.spec_hash", "")}
