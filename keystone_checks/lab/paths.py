"""Where lab artefacts live.

Images, snapshots, keys and overlays are big and machine-specific, so they go
under the user cache dir, never in the repository:
``${XDG_CACHE_HOME:-~/.cache}/keystone-checks/lab/<base-hash>/``.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "keystone-checks" / "lab"


def run_root() -> Path:
    """Per-run scratch (clone overlays, QMP sockets, serial logs)."""
    return cache_root() / "run"


REPO_ROOT = Path(__file__).resolve().parents[2]
CAPTURE_ROOT = REPO_ROOT / "tests" / "fixtures" / "captured"
