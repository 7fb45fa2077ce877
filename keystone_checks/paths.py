"""Where the catalog (``checks/``) and the playbooks are: one answer for every module.

In a source checkout (``pip install -e .``) they are the repository's own ``checks/`` and
``playbooks/``, next to the package. A wheel (``pip install .``) carries copies inside the package
(``keystone_checks/_bundled/``, put there by setup.py at build time), so ``keystone-checks run``
works from any directory. ``KEYSTONE_CHECKS_DIR`` overrides the catalog.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE.parent
BUNDLED = PACKAGE / "_bundled"


def _first_existing(name: str) -> Path:
    # A checkout (or a copy of one, like the systemd units' /opt/keystone-checks) has checks/ and
    # playbooks/ beside the package; an installed wheel has them inside it.
    if (SOURCE_ROOT / name).is_dir() and (SOURCE_ROOT / "keystone_checks").is_dir():
        return SOURCE_ROOT / name
    return BUNDLED / name


def checks_dir() -> Path:
    """The catalog directory: $KEYSTONE_CHECKS_DIR, the checkout's checks/, or the bundled copy."""
    override = os.environ.get("KEYSTONE_CHECKS_DIR")
    return Path(override) if override else _first_existing("checks")


def playbooks_dir() -> Path:
    """The playbooks directory: the checkout's playbooks/, or the bundled copy."""
    return _first_existing("playbooks")
