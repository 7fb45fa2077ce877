"""Where lab artefacts live.

Images, snapshots, keys and overlays are big and machine-specific, so they go
under the user cache dir, never in the repository:
``${XDG_CACHE_HOME:-~/.cache}/keystone-checks/lab/<base-hash>/``.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "keystone-checks" / "lab"


def run_root() -> Path:
    """Per-run scratch (clone overlays, QMP sockets, serial logs)."""
    return cache_root() / "run"


def clone_workdir(built: Path, what: str, build_args: str, name: str, workdir: Path | None = None) -> Path:
    """A new clone's scratch dir (``run/<name>-<random>`` unless given), after checking that
    ``built`` (a saved state or a built disk) is complete: its meta.json is written last."""
    if not (built / "meta.json").exists():
        from keystone_checks.lab.errors import LabError

        raise LabError(f"{what} is not built; run: python -m keystone_checks.lab build {build_args}")
    workdir = workdir or run_root() / f"{name}-{os.urandom(4).hex()}"
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


@contextmanager
def build_lock(name: str) -> Iterator[None]:
    """A lock (``build-<name>.lock`` in the cache) around one kind of build, so two builders
    (pytest-xdist workers, a background `lab build`) never build the same thing: the second waits,
    then finds it built. One name per thing that may be built at the same time as another: an
    image, a variant's saved states (one builds on another), the Keystone-shaped disk; the Debian
    guests' states must not wait for a Keystone disk being built. Not re-entrant."""
    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / f"build-{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


REPO_ROOT = Path(__file__).resolve().parents[2]
CAPTURE_ROOT = REPO_ROOT / "tests" / "fixtures" / "captured"
