"""Cluster mode without a cluster: profiles in a temporary file, a fake KFP API on 127.0.0.1, and
canary credentials planted in the environment under the names real ones have (they must never
surface in compiled YAML, dry-run output or CLI output)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from cluster_harness import BASE_PROFILE, CANARY, CANARY_ENV, TOKEN, profile_document  # noqa: E402
from fake_kfp import FakeKfp  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def workspace_cache(tmp_path_factory):
    """`vlp submit` ships the working tree as a wheel cached by content: one build for the whole session, kept
    out of the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Canaries in the environment, a private VLP_HOME and KFP context, wide rich tables."""
    for name in CANARY_ENV:
        monkeypatch.setenv(name, CANARY)
    monkeypatch.setenv("VLP_KFP_TOKEN", TOKEN)
    monkeypatch.setenv("VLP_HOME", str(tmp_path / "vlp-home"))
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("VLP_PROFILE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    import kfp

    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))


@pytest.fixture
def write_profiles(tmp_path, monkeypatch):
    """Write profile documents (or raw text) to a profiles file and point VLP_PROFILES at it."""

    def write(*documents, raw: str | None = None) -> Path:
        path = tmp_path / "profiles.yaml"
        path.write_text(raw if raw is not None else yaml.safe_dump({"profiles": list(documents)}, sort_keys=False))
        monkeypatch.setenv("VLP_PROFILES", str(path))
        return path

    return write


@pytest.fixture
def kfp_server():
    server = FakeKfp(valid_tokens={TOKEN}).start()
    yield server
    server.stop()


@pytest.fixture
def cluster_profile(write_profiles, kfp_server):
    """Profile `gpu` pointing at the fake KFP."""
    write_profiles(profile_document(kfp={**BASE_PROFILE["kfp"], "host": kfp_server.url}))
    return kfp_server


