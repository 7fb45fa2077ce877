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
    mounted = host.get_fact(Command, f"{_disk_devices(path)} 2>/dev/null | while read -r d; do "
                                     "awk -v d=\"$d\" '$1==d {print $2}' /proc/mounts; done; true")
    if not mounted:
        host.noop(f"nothing on {path} is mounted")
        return
    yield (f"{_disk_devices(path)} | while read -r d; do awk -v d=\"$d\" '$1==d {{print $2}}' /proc/mounts; done "
           "| sort -r | while read -r m; do umount \"$m\" || exit 1; done")


@operation()
def swapoff_disk(path: str):
    """Turn off swap areas on the target disk's partitions (guide: "swapoff -a", narrowed to the disk).

    + path: the target disk (host data ``disk``)

    **Example:**

    .. code:: python

        boot.swapoff_disk(path="/dev/vda")
    """
    active = host.get_fact(Command, f"{_disk_devices(path)} 2>/dev/null | while read -r d; do "
                                    "awk -v d=\"$d\" '$1==d {print $1}' /proc/swaps; done; true")
    if not active:
        host.noop(f"no swap is active on {path}")
        return
    yield (f"{_disk_devices(path)} | while read -r d; do awk -v d=\"$d\" '$1==d {{print $1}}' /proc/swaps; done "
           "| while read -r s; do swapoff \"$s\" || exit 1; done")
