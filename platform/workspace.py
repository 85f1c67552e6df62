"""Ship the working tree: the code a researcher just changed runs on the cluster, not whatever vlp the image holds.

`vlp submit` builds a wheel of the checkout as it is on disk (tracked files and untracked, not ignored ones:
HEAD plus every uncommitted change), named by the sha256 of that content, and puts it in storage under
`<storage_root>/workspaces/<content sha256>/`. The wheel's version carries the content hash as its local label
(`0.1.0+ws.<sha256>`), so the installed vlp reports what it is. The runtime records the workspace (content hash,
wheel sha256, git commit, dirty or not), the start-run step tags the MLflow run with it.

Every step pod (`use_shipped_code`, the first line of each component) and every training process (this module
as torchrun's `-m`, running the real worker module after it) fetches the wheel, checks its sha256, unpacks it
under `$TMPDIR/vlp-workspaces/` and puts it first on `sys.path`, over the image's vlp. A pure-Python wheel is a
zip of the import tree, so unpacking is installing it (no pip, no network but storage, a read-only image is fine).

This module imports only the standard library at the top: it runs before the shipped vlp replaces the image's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

# The checkout this vlp runs from (an editable install: platform/ lies at the repository root).
SOURCE_ROOT = Path(__file__).resolve().parents[1]
WORKSPACE_URI_ENV = "VLP_WORKSPACE_URI"
WORKSPACE_SHA256_ENV = "VLP_WORKSPACE_WHEEL_SHA256"
LOCAL_LABEL_PREFIX = "ws."
# Besides pyproject's package-dir folders, the files setuptools reads to build the wheel.
BUILD_FILES = ("pyproject.toml", "README.md")


@dataclass(frozen=True)
class ShippedWorkspace:
    """Where the shipped code is and what it is."""

    uri: str
    content_sha256: str
    wheel_sha256: str
    git_commit: str
    dirty: bool

    def as_dict(self) -> dict:
        return {"uri": self.uri, "content_sha256": self.content_sha256, "wheel_sha256": self.wheel_sha256, "git_commit": self.git_commit, "dirty": self.dirty}


def shipped_roots(root: Path) -> tuple[str, ...]:
    """What a wheel of vlp is built from: the folders pyproject maps to packages, and the build files."""
    import tomllib

    package_dirs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return (*sorted({f"{folder}/" for folder in package_dirs.values()}), *BUILD_FILES)


def workspace_files(root: Path) -> list[str]:
    """The checkout's files that make up vlp: tracked and untracked-but-not-ignored, as they are on disk."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *shipped_roots(root)],
        cwd=root, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    return sorted({name for name in listed if name and (root / name).is_file() and "__pycache__" not in name})


def content_sha256(root: Path, files: list[str]) -> str:
    """sha256 over (path, content) of every file, in path order: the same tree gives the same hash anywhere."""
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + b"\0" + hashlib.sha256((root / name).read_bytes()).digest())
    return digest.hexdigest()


def git_state(root: Path) -> tuple[str, bool]:
    """(HEAD commit, whether the shipped files differ from it)."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip() or "unknown"
    status = subprocess.run(["git", "status", "--porcelain", "--", *shipped_roots(root)], cwd=root, capture_output=True, text=True).stdout
    return commit, bool(status.strip())


def build_wheel(root: Path, files: list[str], content: str, out_dir: Path) -> Path:
    """A wheel of `files` under `root`, its version labelled with their content hash."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vlp-ship-") as scratch:
        tree = Path(scratch) / "src"
        for name in files:
            target = tree / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((root / name).read_bytes())
        pyproject = tree / "pyproject.toml"
        text, count = re.subn(r'(?m)^version = "([^"+]+)"', rf'version = "\1+{LOCAL_LABEL_PREFIX}{content}"', pyproject.read_text(), count=1)
        if count != 1:
            raise RuntimeError(f"{root / 'pyproject.toml'}: no `version = \"...\"` line to label with the workspace hash")
        pyproject.write_text(text)
        built = Path(scratch) / "wheel"
        # The build backend (setuptools) is in the lock; no isolation, so nothing is downloaded. A fixed timestamp
        # makes the same tree give the same wheel.
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(built), str(tree)],
            check=True, capture_output=True, env={**os.environ, "SOURCE_DATE_EPOCH": "315532800"},
        )
        (wheel,) = built.glob("*.whl")
        destination = out_dir / wheel.name
        os.replace(wheel, destination)
    return destination


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vlp" / "workspaces"


def prepare_workspace(storage_root: str, root: Path = SOURCE_ROOT) -> tuple[ShippedWorkspace, Path]:
    """The working tree as a wheel (built once per content, then cached) and where it will live in storage."""
    from vlp.platform.errors import VlpUserError
    from vlp.platform.storage import join

    if not (root / ".git").exists():
        raise VlpUserError(f"vlp at {root} is not a git checkout, so there is no working tree to ship; pass --no-ship to run the image's vlp")
    files = workspace_files(root)
    content = content_sha256(root, files)
    commit, dirty = git_state(root)
    cached = cache_dir() / content
    wheels = sorted(cached.glob("*.whl")) if cached.is_dir() else []
    wheel = wheels[0] if wheels else build_wheel(root, files, content, cached)
    shipped = ShippedWorkspace(
        uri=join(storage_root, "workspaces", content, wheel.name), content_sha256=content,
        wheel_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(), git_commit=commit, dirty=dirty,
    )
    return shipped, wheel


def upload_workspace(shipped: ShippedWorkspace, wheel: Path) -> None:
    """Store the wheel (once per content) and its manifest beside it."""
    from vlp.platform.storage import open_storage

    storage = open_storage(shipped.uri)
    if not storage.exists(shipped.uri):
        storage.write_bytes(shipped.uri, wheel.read_bytes())
    manifest = shipped.uri.rsplit("/", 1)[0] + "/workspace.json"
    storage.write_bytes(manifest, json.dumps(shipped.as_dict(), indent=2).encode())


def install(uri: str, wheel_sha256: str, cache: Path | None = None) -> Path:
    """Fetch the wheel, check its sha256, unpack it (once per pod) and put it first on sys.path; returns its folder.
    The vlp modules already imported (the image's) are dropped, so the next import reads the shipped ones."""
    cache = cache or Path(tempfile.gettempdir()) / "vlp-workspaces"
    target = cache / wheel_sha256
    if not target.is_dir():
        from vlp.platform.storage import open_storage

        data = open_storage(uri).read_bytes(uri)
        found = hashlib.sha256(data).hexdigest()
        if found != wheel_sha256:
            raise RuntimeError(f"shipped code at {uri} has sha256 {found}, the run recorded {wheel_sha256}: refusing to run it")
        cache.mkdir(parents=True, exist_ok=True)
        unpacking = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=cache))
        with tempfile.TemporaryFile() as archive:
            archive.write(data)
            archive.seek(0)
            with zipfile.ZipFile(archive) as wheel:
                wheel.extractall(unpacking)
        try:
            # Several processes of one pod may race here: the first rename wins, the others use its tree.
            os.rename(unpacking, target)
        except OSError:
            import shutil

            shutil.rmtree(unpacking, ignore_errors=True)
    if str(target) not in sys.path:
        sys.path.insert(0, str(target))
    for name in [name for name in sys.modules if name == "vlp" or name.startswith("vlp.")]:
        del sys.modules[name]
    import importlib

    importlib.invalidate_caches()
    return target


def use_shipped_code(runtime_json: str) -> None:
    """First line of every step: install the run's shipped code if it has one (`vlp submit --no-ship`: none)."""
    workspace = json.loads(runtime_json).get("workspace")
    if workspace:
        install(workspace["uri"], workspace["wheel_sha256"])


def installed_workspace() -> str | None:
    """The content hash of the shipped vlp this process runs, None for an image's or a checkout's own vlp."""
    from importlib.metadata import version

    _, _, label = version("vlp").partition("+")
    return label.removeprefix(LOCAL_LABEL_PREFIX) if label.startswith(LOCAL_LABEL_PREFIX) else None


def main(argv: list[str]) -> None:
    """`python -m vlp.platform.workspace MODULE ARGS...`: install the shipped code named by the environment, then run
    MODULE as `python -m MODULE ARGS...` would (torchrun's `-m` for training workers)."""
    import runpy

    if not argv:
        raise SystemExit("usage: python -m vlp.platform.workspace MODULE [ARGS...]")
    if os.environ.get(WORKSPACE_URI_ENV):
        install(os.environ[WORKSPACE_URI_ENV], os.environ[WORKSPACE_SHA256_ENV])
    sys.argv = list(argv)
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
