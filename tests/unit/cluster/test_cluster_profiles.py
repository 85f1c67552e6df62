"""Profiles: the file format, what a bad profile says (one line, exit 2), and the chart's profile
document validating against the same model."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cluster_harness import BASE_PROFILE, CANARY, REPO, assert_one_line_error, profile_document, run_vlp

from vlp.platform.profiles import find_profile, load_profiles, profile_runtime, profiles_path

JWT_LIKE = "eyJhbGciOiJSUzI1NiIsImtpZCI6IkFCQyJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJl"


def test_profiles_path_follows_env_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("VLP_PROFILES", str(tmp_path / "mine.yaml"))
    assert profiles_path() == tmp_path / "mine.yaml"
    monkeypatch.delenv("VLP_PROFILES")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert profiles_path() == tmp_path / "xdg" / "vlp" / "profiles.yaml"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert profiles_path() == tmp_path / "home" / ".config" / "vlp" / "profiles.yaml"
    assert load_profiles() == {}, "no file yet: only `local`"
    assert find_profile("local") is None


def test_example_profiles_load_and_resolve(monkeypatch):
    monkeypatch.setenv("VLP_PROFILES", str(REPO / "examples" / "profiles.yaml"))
    profiles = load_profiles()
    assert set(profiles) == {"gpu", "dev"}
    runtime = profile_runtime(profiles["gpu"], team="dg")
    assert runtime.scheduler == "kubernetes"
    assert runtime.scheduler_cfg == {"queue": "vlp-dg", "namespace": "vlp", "service_account": "vlp-pipeline", "priority_class": "research-high"}
    assert runtime.image == "registry.example.com/ml/vlp:0.1.0"
    assert runtime.training_pod.accelerator_selector == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert {item.env for item in runtime.training_pod.secret_env} == {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
    # Unknown teams use the default queue; the dev profile's jobs default to its own namespace.
    assert profile_runtime(profiles["dev"], team="nobody").scheduler_cfg == {"queue": "vlp-research", "namespace": "kubeflow"}


def test_profiles_list_and_show_print_names_not_values(write_profiles):
    write_profiles(profile_document(), profile_document(name="cpu", description="CPU only"))
    code, out, err = run_vlp("profiles", "list")
    assert code == 0, err
    for name in ("local", "gpu", "cpu", "CPU only"):
        assert name in out
    code, out, err = run_vlp("profiles", "show", "gpu")
    assert code == 0, err
    shown = yaml.safe_load(out)
    assert shown["kfp"]["auth"] == {"token_env": "VLP_KFP_TOKEN", "token_path": None}
    assert shown["pod_env_from_secrets"]["AWS_SECRET_ACCESS_KEY"] == "vlp-s3/AWS_SECRET_ACCESS_KEY"
    assert shown["steps"]["retries"] == 3
    code, out, _ = run_vlp("profiles", "show", "local", "--json")
    assert code == 0 and '"scheduler": "local_cwd"' in out
    for text in (out, err):
        assert CANARY not in text


def test_single_profile_document_as_the_chart_writes_it(write_profiles):
    write_profiles(raw=yaml.safe_dump(profile_document(name="cluster")))
    assert list(load_profiles()) == ["cluster"]


@pytest.mark.parametrize(
    ("document", "fragments"),
    [
        (profile_document(kfp={**BASE_PROFILE["kfp"], "hots": "x"}), ["kfp.hots", "unknown key"]),
        (profile_document(kfp={**BASE_PROFILE["kfp"], "auth": {"token": JWT_LIKE}}), ["kfp.auth.token", "inline secret"]),
        (profile_document(mlflow={"tracking_uri": "http://m:5000", "password": "hunter2"}), ["mlflow.password", "inline secret"]),
        (profile_document(s3={"secret_access_key": "wJalrXUtnFEMI/K7MDENG"}), ["s3.secret_access_key", "inline secret"]),
        (profile_document(description=f"token {JWT_LIKE}"), ["description", "JSON web token"]),
        (profile_document(kfp={**BASE_PROFILE["kfp"], "auth": {"token_env": "abc.def-123"}}), ["kfp.auth.token_env", "environment variable"]),
        (profile_document(mlflow={"tracking_uri": "https://admin:hunter2@mlflow.example.com"}), ["mlflow.tracking_uri", "password"]),
        (profile_document(kfp={**BASE_PROFILE["kfp"], "auth": {"token_env": "A", "token_path": "/t"}}), ["not both"]),
        (profile_document(storage_root="/data/vlp"), ["storage_root", "s3://"]),
        (profile_document(name="local"), ["built-in"]),
        ({key: value for key, value in BASE_PROFILE.items() if key != "name"}, ["profiles[0]", "name: required field is missing"]),
    ],
    ids=["unknown-key", "inline-token", "inline-password", "inline-s3-key", "jwt-in-any-field", "token-in-token-env",
         "password-in-url", "two-token-sources", "local-storage-root", "redefines-local", "no-name"],
)
def test_bad_profile_is_one_line_exit_2(write_profiles, document, fragments):
    write_profiles(document)
    code, out, err = run_vlp("submit", str(REPO / "experiments" / "quickstart.yaml"), "--profile", "gpu", "--dry-run", "--out", "/nonexistent")
    assert_one_line_error(code, err, *fragments)
    for secret in (JWT_LIKE, "hunter2", "wJalrXUtnFEMI"):
        assert secret not in err + out


def test_unknown_profile_name_lists_the_known_ones(write_profiles):
    write_profiles(profile_document())
    code, _, err = run_vlp("runs", "list", "--profile", "gpu-typo")
    assert_one_line_error(code, err, "'gpu-typo'", "known: local, gpu")


def test_missing_profiles_file_named_by_env(monkeypatch, tmp_path):
    monkeypatch.setenv("VLP_PROFILES", str(tmp_path / "absent.yaml"))
    code, _, err = run_vlp("profiles", "list")
    assert_one_line_error(code, err, "VLP_PROFILES", "no such file")


def test_local_profile_is_not_a_submit_target(write_profiles):
    write_profiles(profile_document())
    code, _, err = run_vlp("submit", str(REPO / "experiments" / "quickstart.yaml"), "--profile", "local")
    assert_one_line_error(code, err, "vlp run")


def _helm() -> str | None:
    beside = Path(sys.executable).parent / "helm"
    return str(beside) if beside.is_file() else shutil.which("helm")


@pytest.mark.skipif(_helm() is None, reason="helm binary (helm-binary) not installed")
@pytest.mark.parametrize("values", [[], ["--values", str(REPO / "charts" / "vlp" / "values-production.yaml")]], ids=["default", "production"])
def test_chart_profile_is_a_valid_profile(values, tmp_path, monkeypatch):
    rendered = subprocess.run(
        [_helm(), "template", "vlp", str(REPO / "charts" / "vlp"), "--namespace", "vlp-test", *values,
         "--show-only", "templates/profile-configmap.yaml"],
        capture_output=True, text=True, timeout=60, check=True,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HELM_CACHE_HOME": str(tmp_path / "c"),
             "HELM_CONFIG_HOME": str(tmp_path / "f"), "HELM_DATA_HOME": str(tmp_path / "d")},
    ).stdout
    document = yaml.safe_load(rendered)["data"]["profile.yaml"]
    path = tmp_path / "profile.yaml"
    path.write_text(document)
    monkeypatch.setenv("VLP_PROFILES", str(path))
    (profile,) = load_profiles().values()
    runtime = profile_runtime(profile)
    assert runtime.scheduler_cfg["namespace"] == "vlp-test"
    assert profile.kfp.service_account == "vlp-pipeline"
    if values:
        assert profile.name == "prod"
        assert profile.team_queues == {"vision": "vlp-vision", "dg": "vlp-dg"}
        assert profile.kfp.auth.token_env == "VLP_KFP_TOKEN"
        assert profile.mlflow.external_uri == "https://mlflow.example.com"
        assert profile.worker_cpu == 88 and profile.steps.train_timeout_seconds == 259200
        assert {item.secret for item in profile.secret_env()} == {"vlp-s3", "vlp-mlflow-pipelines"}
    else:
        assert profile.team_queues == {"research": "vlp-research"}
        assert profile.mlflow.credentials_secret is None
