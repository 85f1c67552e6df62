"""Shipping the working tree: a dirty checkout becomes a wheel named by its content hash in (moto) S3, and a fresh
virtualenv holding the image's vlp installs it the way a step pod and a training worker do: the shipped code runs,
the installed vlp reports the shipped hash, and a wheel that is not the recorded one is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from vlp.platform.workspace import WORKSPACE_SHA256_ENV, WORKSPACE_URI_ENV, content_sha256, prepare_workspace, upload_workspace, workspace_files

REPO = Path(__file__).resolve().parents[3]
PROBE = '''import sys
from vlp.platform.workspace import installed_workspace
from vlp.workloads import SHIPPED_MARKER
import vlp.workloads

print(__import__("json").dumps({"hash": installed_workspace(), "marker": SHIPPED_MARKER, "from": vlp.workloads.__file__, "argv": sys.argv[1:]}))
'''


@pytest.fixture(scope="module")
def dirty_checkout(tmp_path_factory) -> Path:
    """A clone of this repository's HEAD with an uncommitted edit and an untracked module."""
    root = tmp_path_factory.mktemp("checkout") / "vlp"
    subprocess.run(["git", "clone", "--quiet", "--shared", str(REPO), str(root)], check=True)
    init = root / "workloads" / "__init__.py"
    init.write_text(init.read_text() + '\nSHIPPED_MARKER = "uncommitted edit"\n')
    (root / "workloads" / "shipped_probe.py").write_text(PROBE)
    return root


@pytest.fixture(scope="module")
def pod_python(tmp_path_factory) -> Path:
    """A fresh virtualenv standing in for the image: this environment's packages, its vlp included (the image's)."""
    venv = tmp_path_factory.mktemp("pod") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site_packages = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    # `import` lines of a .pth run at start-up: the image's packages, editable vlp finder and all.
    (site_packages / "image.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    return venv / "bin" / "python"


def _pod_env(s3_env, cache: Path) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(cache), "PYTHONSAFEPATH": "1"}


def test_a_dirty_tree_ships_and_a_worker_runs_it(dirty_checkout, pod_python, s3_env, s3_bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    shipped, wheel = prepare_workspace(f"s3://{s3_bucket}/vlp", root=dirty_checkout)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=dirty_checkout, capture_output=True, text=True, check=True).stdout.strip()
    assert shipped.dirty and shipped.git_commit == head
    assert shipped.uri.startswith(f"s3://{s3_bucket}/vlp/workspaces/{shipped.content_sha256}/")
    upload_workspace(shipped, wheel)

    pod_tmp = tmp_path / "pod-tmp"
    pod_tmp.mkdir()
    env = {**_pod_env(s3_env, pod_tmp), WORKSPACE_URI_ENV: shipped.uri, WORKSPACE_SHA256_ENV: shipped.wheel_sha256}
    # A training worker: torchrun's `-m vlp.platform.workspace MODULE ARGS`.
    worker = subprocess.run([str(pod_python), "-m", "vlp.platform.workspace", "vlp.workloads.shipped_probe", "--run-id", "r1"],
                            env=env, cwd=pod_tmp, capture_output=True, text=True, timeout=120)
    assert worker.returncode == 0, worker.stderr
    report = json.loads(worker.stdout.strip().splitlines()[-1])
    assert report == {"hash": shipped.content_sha256, "marker": "uncommitted edit", "from": report["from"], "argv": ["--run-id", "r1"]}
    assert report["from"].startswith(str(pod_tmp / "vlp-workspaces")), "the shipped code, not the image's"

    # A step pod: the component's first line installs it from the runtime the pipeline carries.
    runtime_json = json.dumps({"workspace": {"uri": shipped.uri, "wheel_sha256": shipped.wheel_sha256}})
    step = subprocess.run(
        [str(pod_python), "-c", "import sys; from vlp.platform.workspace import use_shipped_code; use_shipped_code(sys.argv[1]); "
         "from vlp.platform.workspace import installed_workspace; from vlp.workloads import SHIPPED_MARKER; print(installed_workspace(), SHIPPED_MARKER)",
         runtime_json],
        env=_pod_env(s3_env, pod_tmp), cwd=pod_tmp, capture_output=True, text=True, timeout=120,
    )
    assert step.returncode == 0, step.stderr
    assert step.stdout.split()[0] == shipped.content_sha256


def test_a_wheel_that_is_not_the_recorded_one_is_refused(dirty_checkout, pod_python, s3_env, s3_bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    shipped, wheel = prepare_workspace(f"s3://{s3_bucket}/tampered", root=dirty_checkout)
    import boto3

    bucket, key = shipped.uri.removeprefix("s3://").split("/", 1)
    boto3.client("s3", endpoint_url=s3_env.url).put_object(Bucket=bucket, Key=key, Body=wheel.read_bytes() + b"tampered")
    pod_tmp = tmp_path / "pod-tmp"
    pod_tmp.mkdir()
    env = {**_pod_env(s3_env, pod_tmp), WORKSPACE_URI_ENV: shipped.uri, WORKSPACE_SHA256_ENV: shipped.wheel_sha256}
    worker = subprocess.run([str(pod_python), "-m", "vlp.platform.workspace", "vlp.workloads.shipped_probe"],
                            env=env, cwd=pod_tmp, capture_output=True, text=True, timeout=120)
    assert worker.returncode != 0 and f"the run recorded {shipped.wheel_sha256}" in worker.stderr
    assert not (pod_tmp / "vlp-workspaces" / shipped.wheel_sha256).exists()


def test_the_content_hash_follows_the_tree(dirty_checkout, tmp_path):
    files = workspace_files(dirty_checkout)
    assert "workloads/shipped_probe.py" in files, "untracked files are shipped"
    assert not any(name.startswith((".venv", "tests/")) for name in files)
    before = content_sha256(dirty_checkout, files)
    assert content_sha256(dirty_checkout, files) == before
    probe = dirty_checkout / "workloads" / "shipped_probe.py"
    original = probe.read_text()
    probe.write_text(original + "# one more line\n")
    try:
        assert content_sha256(dirty_checkout, files) != before
    finally:
        probe.write_text(original)
