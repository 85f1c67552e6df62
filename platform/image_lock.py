"""The image and the checkout must agree on the dependency set. `requirements.lock` (uv pip compile of the
project with its test extras, hashes included) is what `./dev.sh` installs and what the `Containerfile` builds
the image from; the image records the lock's sha256 (label `io.vlp.lock-sha256`, file `/opt/vlp/lock.sha256`)
and the profile names it (`image_lock_sha256`). `vlp submit` compares it with the local lock's."""

from __future__ import annotations

import hashlib
from pathlib import Path

from vlp.platform.errors import SpecError
from vlp.platform.workspace import SOURCE_ROOT

LOCK_FILE = "requirements.lock"
IMAGE_LABEL = "io.vlp.lock-sha256"


def lock_sha256(path: Path | None = None) -> str | None:
    """sha256 of the lock file, None where there is none (a vlp installed from a wheel)."""
    path = path or SOURCE_ROOT / LOCK_FILE
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_image_lock(profile, allow_drift: bool, lock: Path | None = None) -> str:
    """Refuse an image built from another lock (one line, exit 2) unless `allow_drift`; returns a warning, or ''."""
    local = lock_sha256(lock)
    if profile.image_lock_sha256 is None:
        return f"profile {profile.name} names no image_lock_sha256: the image's dependencies are not compared with {LOCK_FILE}"
    if local is None:
        return f"no {LOCK_FILE} beside this vlp: the image's dependencies are not compared"
    if local == profile.image_lock_sha256 or allow_drift:
        return "" if local == profile.image_lock_sha256 else f"image {profile.image} was built from another lock (--allow-drift)"
    raise SpecError(
        f"image_lock_sha256: image {profile.image} was built from lock {profile.image_lock_sha256[:12]}, the local {LOCK_FILE} is "
        f"{local[:12]}; rebuild and push the image (docs/cluster.md) and update the profile, or pass --allow-drift"
    )
