"""Tracking URIs never carry credentials: MLflow reads them from MLFLOW_TRACKING_USERNAME/PASSWORD or
MLFLOW_TRACKING_TOKEN. A URI such as `https://user:secret@host` would otherwise travel into pipeline
arguments, compiled YAML, process lists and logs, so it is refused, and URIs in messages are shown redacted."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from vlp.platform.errors import VlpUserError


def refuse_credentials(tracking_uri: str, source: str = "MLFLOW_TRACKING_URI") -> None:
    if urlsplit(tracking_uri).password is not None:
        raise VlpUserError(
            f"{source}: holds a password in the URL ({redacted(tracking_uri)}); set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) in the environment instead"
        )


def redacted(uri: str) -> str:
    """The URI with any user and password replaced by `***`."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))
