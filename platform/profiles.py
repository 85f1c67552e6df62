"""Profiles say where an experiment runs. `local` is built in: everything under the state directory.
Cluster profiles live in a YAML file: `$VLP_PROFILES`, else `$XDG_CONFIG_HOME/vlp/profiles.yaml`
(`~/.config/vlp/profiles.yaml`). The file holds `profiles:` (a list of profiles, each with a `name`),
or a single profile as the chart's ConfigMap renders it.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any

from vlp.platform.cluster_profile import ClusterProfile
from vlp.platform.errors import ProfileError
from vlp.platform.launch.kubernetes_pods import TrainingPodSettings
from vlp.platform.runtime import RuntimeContext, current_git_commit
from vlp.platform.state import default_storage_root, default_tracking_uri

LOCAL = "local"
PROFILE_KEYS_HINT = "see examples/profiles.yaml or `vlp profiles show`"

# Fields whose secret-sounding names hold references (a variable name, a file path, a Secret's name or key).
REFERENCE_FIELDS = {
    "token_env", "token_path", "credentials_secret", "username_key", "password_key", "token_key",
    "access_key_id_key", "secret_access_key_key", "image_pull_secrets",
}
SECRET_SOUNDING_KEY = re.compile(r"token|passw|secret|api[_-]?key|access[_-]?key|credential|private[_-]?key|auth[_-]?header", re.I)
SECRET_LOOKING_VALUE = (
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\."), "a JSON web token"),
    (re.compile(r"^\s*(Bearer|Basic)\s+\S", re.I), "an Authorization header value"),
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]*@", re.I), "a URL with a password in it"),
)


def profiles_path() -> Path:
    explicit = os.environ.get("VLP_PROFILES")
    if explicit:
        return Path(explicit).expanduser()
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "vlp" / "profiles.yaml"


def load_profiles(path: Path | None = None) -> dict[str, ClusterProfile]:
    """The cluster profiles in the profiles file (none if the default file does not exist)."""
    path = path or profiles_path()
    if not path.is_file():
        if os.environ.get("VLP_PROFILES"):
            raise ProfileError(f"VLP_PROFILES={path}: no such file")
        return {}
    documents = _profile_documents(path)
    profiles: dict[str, ClusterProfile] = {}
    for index, document in enumerate(documents):
        label = f"profile {document['name']}" if isinstance(document.get("name"), str) else f"profiles[{index}]"
        _refuse_inline_secrets(document, f"{path}: {label}")
        profile = _validate(document, f"{path}: {label}")
        if profile.name in profiles:
            raise ProfileError(f"{path}: profile {profile.name!r} is defined twice")
        profiles[profile.name] = profile
    return profiles


def find_profile(name: str) -> ClusterProfile | None:
    """The named cluster profile; None for the built-in `local` profile."""
    if name == LOCAL:
        return None
    profiles = load_profiles()
    if name not in profiles:
        known = ", ".join([LOCAL, *profiles])
        raise ProfileError(f"--profile {name!r}: no such profile in {profiles_path()} (known: {known}; see `vlp profiles list`)")
    return profiles[name]


def local_runtime() -> RuntimeContext:
    return RuntimeContext(
        storage_root=default_storage_root(),
        tracking_uri=default_tracking_uri(),
        scheduler="local_cwd",
        run_key=uuid.uuid4().hex,
        git_commit=current_git_commit(),
    )


def describe_local() -> dict[str, Any]:
    return {
        "name": LOCAL, "mode": "local", "description": "this machine (kfp.local, TorchX local_cwd)",
        "storage_root": default_storage_root(), "tracking_uri": default_tracking_uri(), "scheduler": "local_cwd",
    }


def profile_runtime(profile: ClusterProfile, team: str | None = None, run_key: str | None = None) -> RuntimeContext:
    """What every step of a cluster run is told about where it runs; `team` picks the Volcano queue."""
    accelerator = {profile.accelerator_label: profile.accelerator_type} if profile.accelerator_type else {}
    return RuntimeContext(
        storage_root=profile.storage_root,
        tracking_uri=profile.mlflow.tracking_uri,
        scheduler=profile.torchx.scheduler,
        scheduler_cfg=profile.scheduler_cfg(team),
        image=profile.image,
        run_key=run_key or uuid.uuid4().hex,
        git_commit=current_git_commit(),
        training_pod=TrainingPodSettings(
            node_selector=profile.node_selector,
            tolerations=profile.tolerations,
            env={**profile.training_env, **profile.plain_env()},
            secret_env=profile.secret_env(),
            image_pull_secrets=profile.image_pull_secrets,
            gpu_resource=profile.gpu_resource,
            accelerator_selector=accelerator,
            cpu=profile.worker_cpu,
            memory_mb=profile.worker_memory_mb,
        ),
    )


def _profile_documents(path: Path) -> list[dict[str, Any]]:
    import yaml

    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ProfileError(f"{path}:{where} is not valid YAML ({getattr(err, 'problem', 'parse error')})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ProfileError(f"{path}: cannot read ({type(err).__name__})") from None
    if document is None:
        return []
    if isinstance(document, dict) and "profiles" in document:
        if set(document) != {"profiles"}:
            extra = sorted(set(document) - {"profiles"})[0]
            raise ProfileError(f"{path}: {extra}: unknown key (the file holds `profiles:`, a list of profiles)")
        document = document["profiles"] or []
        if not isinstance(document, list) or not all(isinstance(item, dict) for item in document):
            raise ProfileError(f"{path}: profiles: must be a list of profiles, each a mapping with a `name`")
        return document
    if isinstance(document, dict):
        return [document]
    raise ProfileError(f"{path}: must be a mapping with `profiles:` (a list of profiles) or a single profile")


def _refuse_inline_secrets(document: Any, where: str, location: str = "") -> None:
    """Stop before validation when a field holds what looks like a credential; the message never repeats the value."""
    if isinstance(document, dict):
        for key, value in document.items():
            here = f"{location}.{key}" if location else str(key)
            if isinstance(value, (str, int, float)) and str(key) not in REFERENCE_FIELDS and SECRET_SOUNDING_KEY.search(str(key)):
                raise ProfileError(
                    f"{where}: {here}: looks like an inline secret, and profiles never hold secret values; "
                    "name an environment variable (kfp.auth.token_env) or a Kubernetes Secret (…credentials_secret) instead"
                )
            _refuse_inline_secrets(value, where, here)
    elif isinstance(document, list):
        for index, item in enumerate(document):
            _refuse_inline_secrets(item, where, f"{location}[{index}]")
    elif isinstance(document, str):
        for pattern, what in SECRET_LOOKING_VALUE:
            if pattern.search(document):
                raise ProfileError(f"{where}: {location}: holds what looks like {what}; profiles never hold secret values")


def _validate(document: dict[str, Any], where: str) -> ClusterProfile:
    from pydantic import ValidationError

    from vlp.platform.spec.loading import describe_validation_error

    try:
        return ClusterProfile.model_validate(document)
    except ValidationError as err:
        raise ProfileError(f"{where}: {describe_validation_error(err, PROFILE_KEYS_HINT)}") from None
