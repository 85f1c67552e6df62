"""`vlp runs list` and `vlp models list` against a tracking server (or the local store's `vlp ui`) through MLflow's REST
API (2.0), without importing MLflow: the
client library alone takes over a second to import, the two requests a few milliseconds. Credentials come from
MLflow's own variables (MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN); TLS follows
MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH as MLflow's client does."""

from __future__ import annotations

import base64
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request

from vlp.platform.errors import VlpUserError
from vlp.platform.tracking.uris import redacted

TIMEOUT_SECONDS = 30


def is_server(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def call(tracking_uri: str, endpoint: str, body: dict, method: str = "POST") -> dict:
    """`body` to `<server>/api/2.0/mlflow/<endpoint>` (as JSON, or as the query string of a GET); a refusal or an
    unreachable server is a VlpUserError."""
    url = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/{endpoint}"
    data = None
    if method == "GET":
        url += "?" + urllib.parse.urlencode(body, doseq=True)
    else:
        data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **_auth_headers()}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS, context=_tls_context()) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        try:
            message = json.loads(err.read()).get("message", "")
        except ValueError:
            message = ""
        raise VlpUserError(f"MLflow at {redacted(tracking_uri)}: {err.code} {message or err.reason}".strip()) from None
    except (urllib.error.URLError, OSError) as err:
        raise VlpUserError(f"MLflow at {redacted(tracking_uri)} is unreachable ({getattr(err, 'reason', err)})") from None


def search_experiments(tracking_uri: str) -> list[dict]:
    experiments, token = [], None
    while True:
        page = call(tracking_uri, "experiments/search", {"max_results": 1000, **({"page_token": token} if token else {})})
        experiments += page.get("experiments", [])
        token = page.get("next_page_token")
        if not token:
            return experiments


def search_runs(tracking_uri: str, experiment_ids: list[str], limit: int) -> list[dict]:
    """The newest `limit` runs as MLflow's REST API returns them (`info`, `data.metrics`, `data.tags` lists)."""
    page = call(tracking_uri, "runs/search", {"experiment_ids": experiment_ids, "max_results": limit, "order_by": ["attributes.start_time DESC"]})
    return page.get("runs", [])


def search_model_versions(tracking_uri: str) -> list[dict]:
    """Every registered model's versions as MLflow's REST API returns them, each with its model's aliases
    (`aliases`: [{alias, version}]) as `model_aliases`."""
    models, token = [], None
    while True:
        page = call(tracking_uri, "registered-models/search", {"max_results": 1000, **({"page_token": token} if token else {})}, method="GET")
        models += page.get("registered_models", [])
        token = page.get("next_page_token")
        if not token:
            break
    versions = []
    for model in models:
        aliases = model.get("aliases", [])
        token = None
        while True:
            query = {"filter": f"name = '{model['name']}'", "max_results": 10_000, **({"page_token": token} if token else {})}
            page = call(tracking_uri, "model-versions/search", query, method="GET")
            versions += [{**version, "model_aliases": aliases} for version in page.get("model_versions", [])]
            token = page.get("next_page_token")
            if not token:
                break
    return versions


def _auth_headers() -> dict[str, str]:
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    return {}


def _tls_context() -> ssl.SSLContext | None:
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        return ssl._create_unverified_context()  # noqa: S323 - the user asked MLflow for this
    certificate = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
    return ssl.create_default_context(cafile=certificate) if certificate else None
