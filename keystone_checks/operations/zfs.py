"""Fixes for ZFS pools and the zfs kernel module."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.server import Command

from ..facts.base import shell_quote
from ..facts.zfs import ModuleStatus

EXPORT_TIMEOUT = 120  # ZFS 2.3 hangs an export forever while a zvol is held open; never wait forever


@operation()
def load_module():
    """Load the zfs kernel module (guide: "modprobe zfs").

    **Example:**

    .. code:: python

        zfs.load_module()
    """
    status = host.get_fact(ModuleStatus)
    if status and status.get("loaded"):
        host.noop("zfs module already loaded")
        return
    yield "modprobe zfs"


@operation()
def export_pool(pool: str, credstore_mapping: str = "credstore"):
    """Export a pool, refusing while the credstore LUKS mapping on its zvol is still open.

    + pool: pool name, e.g. ``rpool``
    + credstore_mapping: mapping that must be closed first (an open one makes the export hang)

    **Example:**

    .. code:: python

        zfs.export_pool(pool="rpool")
    """
    imported = host.get_fact(Command, f"zpool list -H -o name 2>/dev/null | grep -Fx {shell_quote(pool)} || true")
    if not imported:
        host.noop(f"pool {pool} is not imported")
        return
    mapping = shell_quote(credstore_mapping)
    yield (
        f"if cryptsetup status {mapping} >/dev/null 2>&1; then "
        f"echo 'refusing to export {pool}: LUKS mapping {credstore_mapping} is still open (close it first)' >&2; exit 1; fi; "
        f"timeout -k 5 {EXPORT_TIMEOUT} zpool export {shell_quote(pool)}"
    )
