"""Fixes on the installer before formatting: release the target disk (mounts, swap)."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation

from ..engine.commands import THEN, assign, cmd, sh
from ..facts.disks import DiskMounts, SwapOnDisk
from . import read_fact


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
    mounts = (read_fact(DiskMounts, path=path) or {}).get("mounts")
    if not mounts:
        host.noop(f"nothing on {path} is mounted")
        return
    # The list is read again when the command runs: an earlier fix may have changed it.
    yield cmd(assign("kc_disk", path), THEN, sh(_UMOUNT_DISK))


@operation()
def swapoff_disk(path: str):
    """Turn off swap areas on the target disk's partitions (guide: "swapoff -a", narrowed to the disk).

    + path: the target disk (host data ``disk``)

    **Example:**

    .. code:: python

        boot.swapoff_disk(path="/dev/vda")
    """
    if not (read_fact(SwapOnDisk, path=path) or {}).get("on_disk"):
        host.noop(f"no swap is active on {path}")
        return
    yield cmd(assign("kc_disk", path), THEN, sh(_SWAPOFF_DISK))


# The devices of "$kc_disk" (the disk and its partitions), each looked up in /proc/mounts or /proc/swaps
# (compared as strings, passed to awk through the environment): unmount deepest first / swap off.
_UMOUNT_DISK = ('lsblk -ln -o PATH -- "$(readlink -f -- "$kc_disk")" 2>/dev/null | while read -r d; do '
                'kc_d=$d awk \'$1 == ENVIRON["kc_d"] { print $2 }\' /proc/mounts; done | sort -r | '
                'while read -r m; do umount -- "$m" || exit 1; done')
_SWAPOFF_DISK = ('lsblk -ln -o PATH -- "$(readlink -f -- "$kc_disk")" 2>/dev/null | while read -r d; do '
                 'kc_d=$d awk \'$1 == ENVIRON["kc_d"] { print $1 }\' /proc/swaps; done | '
                 'while read -r s; do swapoff -- "$s" || exit 1; done')
