"""Destructive disk fixes (guide: "Complete System Rebuild": ``wipefs -a DEV; sgdisk --zap-all DEV``).

Every condition is verified ON THE HOST, at execute time, in the SAME shell command that wipes:
nothing can change between the check and the wipe, and nothing decided on the controller (a
stale fact, a dry run's view) can authorise a wipe. The script refuses (exit 3, ``refusing: ...``
on stderr, nothing written) unless:

- the operator opted in (``allow``: host data ``allow_destructive=true`` and ``destructive_device``
  naming the device; the runner refuses before queueing otherwise, and the op refuses again);
- ``device`` resolves (``readlink -f``, so ``/dev/disk/by-id/...`` links work) to exactly the
  device the inventory declares (``expected_device``), and that is a whole disk (``/sys/block/<n>``);
- nothing on the disk or its partitions is mounted (``/proc/self/mountinfo`` by major:minor and
  ``/proc/mounts`` by path), swapped on (``/proc/swaps``), held by another device
  (``/sys/block/<n>/holders``, ``.../<part>/holders``: dm-crypt, md, LVM), part of an imported ZFS
  pool (``zpool status -P``), or open by any process (``fuser``, when installed);
- ``wipefs`` and ``sgdisk`` are both installed (never half-wipe a disk).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra.api import operation
from pyinfra.api.exceptions import OperationValueError

from ..facts.base import shell_quote

REFUSED_EXIT = 3


@dataclass(frozen=True)
class GuardPaths:
    """Where the guard reads the host's state. Only tests change these (to point at crafted copies);
    the operation always uses the real kernel interfaces."""

    mountinfo: str = "/proc/self/mountinfo"
    mounts: str = "/proc/mounts"
    swaps: str = "/proc/swaps"
    sys_block: str = "/sys/block"
    dev_dir: str = "/dev"
    zpool: str = "zpool"
    fuser: str = "fuser"
    require_block_device: bool = True


REAL = GuardPaths()

_GUARD = r"""
set -u
refuse() { echo "refusing: $*" >&2; exit __REFUSED__; }
[ -n "$kc_dev" ] || refuse "no device named (set --data destructive_device=<disk>)"
[ -n "$kc_expected" ] || refuse "the inventory declares no disk (host data 'disk')"
[ -e "$kc_dev" ] || refuse "device $kc_dev does not exist"
[ -e "$kc_expected" ] || refuse "the inventory's disk $kc_expected does not exist"
kc_real=$(readlink -f -- "$kc_dev") || refuse "cannot resolve $kc_dev"
kc_exp_real=$(readlink -f -- "$kc_expected") || refuse "cannot resolve $kc_expected"
[ "$kc_real" = "$kc_exp_real" ] || refuse "$kc_dev is $kc_real but the inventory's disk $kc_expected is $kc_exp_real"
if [ "$kc_require_block" = 1 ] && [ ! -b "$kc_real" ]; then refuse "$kc_real is not a block device"; fi
kc_name=${kc_real##*/}
kc_sys="$kc_sys_block/$kc_name"
[ -d "$kc_sys" ] || refuse "$kc_real is not a whole disk (no $kc_sys)"
command -v wipefs >/dev/null 2>&1 || refuse "wipefs is not installed"
command -v sgdisk >/dev/null 2>&1 || refuse "sgdisk is not installed (install gdisk)"
# The disk and its partitions: device nodes and major:minor numbers.
kc_nodes="$kc_real"
kc_majmin=$(cat "$kc_sys/dev" 2>/dev/null) || refuse "cannot read $kc_sys/dev"
for kc_p in "$kc_sys"/*/partition; do
  [ -e "$kc_p" ] || continue
  kc_pdir=${kc_p%/partition}
  kc_pname=${kc_pdir##*/}
  kc_nodes="$kc_nodes $kc_dev_dir/$kc_pname"
  kc_majmin="$kc_majmin $(cat "$kc_pdir/dev" 2>/dev/null)"
done
for kc_h in "$kc_sys"/holders/* "$kc_sys"/*/holders/*; do
  [ -e "$kc_h" ] || continue
  refuse "$kc_real is held open by ${kc_h##*/} (${kc_h#$kc_sys/})"
done
kc_is_ours() {  # $1: a path; true if it resolves to the disk or one of its partitions
  kc_r=$(readlink -f -- "$1" 2>/dev/null) || kc_r=$1
  for kc_n in $kc_nodes; do [ "$kc_r" = "$kc_n" ] && return 0; done
  return 1
}
if [ -r "$kc_mountinfo" ]; then
  while read -r _id _parent kc_mm _root kc_mp _rest; do
    for kc_m in $kc_majmin; do
      [ "$kc_mm" = "$kc_m" ] && refuse "a filesystem on $kc_real ($kc_mm) is mounted at $kc_mp"
    done
  done < "$kc_mountinfo"
else
  refuse "cannot read $kc_mountinfo"
fi
[ -r "$kc_mounts" ] || refuse "cannot read $kc_mounts"
while read -r kc_src kc_mp _rest; do
  case "$kc_src" in /*) kc_is_ours "$kc_src" && refuse "$kc_src is mounted at $kc_mp" ;; esac
done < "$kc_mounts"
[ -r "$kc_swaps" ] || refuse "cannot read $kc_swaps"
while read -r kc_src _rest; do
  case "$kc_src" in /*) kc_is_ours "$kc_src" && refuse "$kc_src is in use as swap" ;; esac
done < "$kc_swaps"
if command -v "$kc_zpool" >/dev/null 2>&1; then
  kc_zout=$("$kc_zpool" status -P 2>&1); kc_zrc=$?
  case "$kc_zout" in
    *"no pools available"*|*"modules are not loaded"*) ;;
    *) [ "$kc_zrc" = 0 ] || refuse "cannot list imported ZFS pools: $kc_zout"
       for kc_w in $kc_zout; do
         case "$kc_w" in /*) kc_is_ours "$kc_w" && refuse "$kc_w is a vdev of an imported ZFS pool (zpool status -P)" ;; esac
       done ;;
  esac
fi
if command -v "$kc_fuser" >/dev/null 2>&1; then
  for kc_n in $kc_nodes; do
    [ -e "$kc_n" ] || continue
    if "$kc_fuser" -s "$kc_n" >/dev/null 2>&1; then refuse "$kc_n is open by a process (fuser $kc_n)"; fi
  done
fi
echo "keystone-checks: all conditions met; wiping $kc_real ($kc_dev)"
for kc_n in $kc_nodes; do
  [ "$kc_n" != "$kc_real" ] && [ -b "$kc_n" ] && { wipefs -a -- "$kc_n" >/dev/null || exit 1; }
done
wipefs -a -- "$kc_real" && sgdisk --zap-all -- "$kc_real" || exit 1
# With the partition table gone, signatures it hid become visible to blkid (ZFS keeps two of its
# four labels at the end of the old partition, which is near the end of the disk): wipe again
# until wipefs sees nothing.
kc_i=0
while [ "$kc_i" -lt 3 ] && [ -n "$(wipefs --noheadings -- "$kc_real" 2>/dev/null)" ]; do
  wipefs -a -- "$kc_real" >/dev/null || exit 1; kc_i=$((kc_i + 1))
done
[ -z "$(wipefs --noheadings -- "$kc_real" 2>/dev/null)" ] || { echo "signatures left on $kc_real after wiping" >&2; exit 1; }
"""


def guarded_wipe_script(device: str, expected_device: str, paths: GuardPaths = REAL) -> str:
    """One POSIX shell script: verify every condition, then wipe. Values are shell-quoted into
    variables at the top and only ever used as ``"$variables"`` below."""
    head = (
        f"kc_dev={shell_quote(device)}; kc_expected={shell_quote(expected_device)}; "
        f"kc_mountinfo={shell_quote(paths.mountinfo)}; kc_mounts={shell_quote(paths.mounts)}; "
        f"kc_swaps={shell_quote(paths.swaps)}; kc_sys_block={shell_quote(paths.sys_block)}; "
        f"kc_dev_dir={shell_quote(paths.dev_dir)}; "
        f"kc_zpool={shell_quote(paths.zpool)}; kc_fuser={shell_quote(paths.fuser)}; "
        f"kc_require_block={1 if paths.require_block_device else 0}"
    )
    return head + _GUARD.replace("__REFUSED__", str(REFUSED_EXIT))


def _truthy(value) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


@operation(is_idempotent=False)
def wipe_disk(device: str, expected_device: str, allow: bool = False):
    """Erase every partition table and filesystem signature on a whole disk
    (guide: "Complete System Rebuild": ``wipefs -a DEV`` then ``sgdisk --zap-all DEV``).

    + device: the device the operator named for this run (host data ``destructive_device``)
    + expected_device: the inventory's declared disk (host data ``disk``)
    + allow: the operator's opt-in (host data ``allow_destructive``)

    Destructive. Runs as ONE guarded shell command that re-verifies on the host, right before
    wiping, that the device is the inventory's disk and that nothing uses it; otherwise it exits
    3 with ``refusing: <reason>`` and writes nothing.

    **Example:**

    .. code:: python

        disks.wipe_disk(device="/dev/disk/by-id/nvme-X", expected_device="/dev/disk/by-id/nvme-X", allow=True)
    """
    if not _truthy(allow):
        raise OperationValueError("refusing: destructive operation without allow_destructive=true")
    if not device or not expected_device:
        raise OperationValueError("refusing: wipe_disk needs both the named device and the inventory's disk")
    if device != expected_device:
        raise OperationValueError(f"refusing: named device {device!r} is not the inventory's disk {expected_device!r}")
    yield guarded_wipe_script(device, expected_device)
