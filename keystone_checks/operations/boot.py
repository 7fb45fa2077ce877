"""Fixes on the installer before formatting: release the target disk (mounts, swap)."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.server import Command

from ..facts.base import shell_quote


def _disk_devices(path: str) -> str:
    return f"lsblk -ln -o PATH \"$(readlink -f {shell_quote(path)})\""


@operation()
def release_disk_mounts(path: str):
    """Unmount every filesystem on the target disk and its partitions, deepest mount first
    (guide, Disk Formatting Fails: "umount /mnt/*").

    + path: the target disk (host data ``disk``)

    Disruptive: whatever was mounted from the disk becomes unreachable.

    **Example:**

    .. code:: python

        boot.release_disk_mounts(path="/dev/vda")
    """
    if not host.get_fact(Command, f"{_entries_on_disk(path, '/proc/mounts', 2)}; true"):
        host.noop(f"nothing on {path} is mounted")
        return
    yield f"{_entries_on_disk(path, '/proc/mounts', 2)} | sort -r | while read -r m; do umount \"$m\" || exit 1; done"


@operation()
def swapoff_disk(path: str):
    """Turn off swap areas on the target disk's partitions (guide: "swapoff -a", narrowed to the disk).

    + path: the target disk (host data ``disk``)

    **Example:**

    .. code:: python

        boot.swapoff_disk(path="/dev/vda")
    """
    if not host.get_fact(Command, f"{_entries_on_disk(path, '/proc/swaps', 1)}; true"):
        host.noop(f"no swap is active on {path}")
        return
    yield f"{_entries_on_disk(path, '/proc/swaps', 1)} | while read -r s; do swapoff \"$s\" || exit 1; done"


def _entries_on_disk(path: str, table: str, column: int) -> str:
    """Shell pipeline printing column ``column`` of each line of ``table`` (/proc/mounts, /proc/swaps)
    whose device is the disk or one of its partitions."""
    return (f"{_disk_devices(path)} 2>/dev/null | while read -r d; do "
            f"awk -v d=\"$d\" '$1==d {{print ${column}}}' {table}; done")
