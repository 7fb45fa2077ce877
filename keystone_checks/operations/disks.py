"""Destructive disk fixes (guide: "Complete System Rebuild": ``wipefs -a DEV; sgdisk --zap-all DEV``).

Every condition is verified ON THE HOST, at execute time, in the SAME shell command that wipes:
nothing can change between the check and the wipe, and nothing decided on the controller (a
stale fact, a dry run's view) can authorise a wipe. The script refuses (exit 3, ``refusing: ...``
on stderr, nothing written) unless:

- the operator opted in (``allow``: host data ``allow_destructive=true`` and ``destructive_device``
  naming this host and the device, ``HOST:DEVICE``; the runner refuses before queueing otherwise,
  and the op refuses again);
- ``device`` resolves (``readlink -f``, so ``/dev/disk/by-id/...`` links work) to exactly the
  device the inventory declares (``expected_device``), and that is a whole disk (``/sys/block/<n>``);
- nothing uses the disk or one of its partitions: none is mounted (``/proc/self/mountinfo`` by
  major:minor and ``/proc/mounts`` by path) or swapped on (``/proc/swaps``); none is held by another
  device (``/sys/block/<n>/holders``, ``.../<part>/holders``: dm-crypt, md, LVM -- any holder refuses,
  whatever is stacked above it); no loop device is backed by it or by a file on a filesystem on it
  (``/sys/block/loop*/loop/backing_file``, compared by device number; a backing file that cannot be
  examined refuses); it is not a vdev of an imported ZFS pool (``zpool status -P``; the zfs module
  loaded without ``zpool`` refuses); and no process has it open (every ``/proc/<pid>/fd/*``, one
  ``stat -L`` per process, compared by device number; a process whose descriptors cannot be
  read refuses). ``fuser`` is not used: it is missing on the Keystone installer and reads EPERM as
  "not in use";
- ``wipefs``, ``sgdisk`` and ``stat`` are installed (never half-wipe a disk).

Anything the guard cannot establish refuses (unknown = refuse).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationValueError

from ..engine.commands import THEN, Part, assign, cmd, sh
from ..engine.hostdata import consented_device

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
    proc: str = "/proc"
    zpool: str = "zpool"
    require_block_device: bool = True


REAL = GuardPaths()

_GUARD = r"""
set -u
refuse() { printf 'refusing: %s\n' "$*" >&2; exit 3; }
[ -n "$kc_dev" ] || refuse "no device named (set --data destructive_device=HOST:<disk>)"
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
command -v stat >/dev/null 2>&1 || refuse "stat is not installed"
# The disk and its partitions: device nodes, major:minor numbers, identities (kc_key).
kc_nodes="$kc_real"
kc_majmin=$(cat "$kc_sys/dev" 2>/dev/null) || refuse "cannot read $kc_sys/dev"
for kc_p in "$kc_sys"/*/partition; do
  [ -e "$kc_p" ] || continue
  kc_pdir=${kc_p%/partition}
  kc_pname=${kc_pdir##*/}
  kc_nodes="$kc_nodes $kc_dev_dir/$kc_pname"
  kc_pmm=$(cat "$kc_pdir/dev" 2>/dev/null) || refuse "cannot read $kc_pdir/dev"
  kc_majmin="$kc_majmin $kc_pmm"
done
kc_key() {  # identity of a file: b<major>:<minor> for a block device, i<dev major>:<dev minor>:<inode> otherwise
  kc_s=$(stat -L -c '%F/%Hr:%Lr/%Hd:%Ld:%i' -- "$1" 2>/dev/null) || return 1
  case "$kc_s" in "block special file"/*) kc_s=${kc_s#*/}; printf 'b%s\n' "${kc_s%%/*}" ;; *) printf 'i%s\n' "${kc_s##*/}" ;; esac
}
kc_keys=""
for kc_n in $kc_nodes; do
  [ -e "$kc_n" ] || continue
  kc_k=$(kc_key "$kc_n") || refuse "cannot examine $kc_n (stat)"
  kc_keys="$kc_keys $kc_k"
done
kc_is_key() { for kc_x in $kc_keys; do [ "$1" = "$kc_x" ] && return 0; done; return 1; }
kc_is_ours() {  # $1: a path; true if it resolves to the disk or one of its partitions
  kc_r=$(readlink -f -- "$1" 2>/dev/null) || kc_r=$1
  for kc_n in $kc_nodes; do [ "$kc_r" = "$kc_n" ] && return 0; done
  kc_k=$(kc_key "$1") && kc_is_key "$kc_k" && return 0
  return 1
}
for kc_h in "$kc_sys"/holders/* "$kc_sys"/*/holders/*; do
  [ -e "$kc_h" ] || continue
  refuse "$kc_real is held open by ${kc_h##*/} (${kc_h#$kc_sys/})"
done
for kc_l in "$kc_sys_block"/loop*; do
  [ -e "$kc_l/loop/backing_file" ] || continue  # a loop device with nothing attached
  kc_lname=${kc_l##*/}
  [ "$kc_lname" = "$kc_name" ] && continue
  kc_b=$(cat "$kc_l/loop/backing_file") || refuse "cannot read $kc_l/loop/backing_file"
  kc_bk=$(kc_key "$kc_b") || refuse "cannot examine $kc_lname's backing file $kc_b (deleted, or on a filesystem no longer mounted?): it may live on $kc_real"
  kc_is_key "$kc_bk" && refuse "$kc_real is in use by $kc_lname (a loop device backed by $kc_b)"
  kc_fs=$(stat -L -c '%Hd:%Ld' -- "$kc_b" 2>/dev/null) || refuse "cannot examine $kc_lname's backing file $kc_b"
  for kc_m in $kc_majmin; do
    [ "$kc_fs" = "$kc_m" ] && refuse "$kc_real is in use by $kc_lname (its backing file $kc_b is on a filesystem on $kc_real, $kc_m)"
  done
done
kc_is_ours_any() { for kc_a in "$@"; do kc_is_ours "$kc_a" && return 0; done; return 1; }
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
elif [ -d "${kc_sys_block%/block}/module/zfs" ]; then
  refuse "the zfs module is loaded but zpool is not installed: cannot tell whether $kc_real is a vdev of an imported pool"
fi
# Open file descriptors of every process, compared by identity (one stat per process, so no
# argument list grows with the host). A process or descriptor that vanished meanwhile is fine; a
# descriptor directory or descriptor that cannot be read (EPERM), or any output stat should not
# print, refuses.
[ -d "$kc_proc/$$/fd" ] || refuse "cannot read open files ($kc_proc/$$/fd is missing)"
kc_fds=$(for kc_pd in "$kc_proc"/[0-9]*/fd; do
  set -- "$kc_pd"/*
  if [ ! -e "$1" ] && [ ! -L "$1" ]; then  # no descriptor listed: empty (kernel thread), gone, or unreadable
    ls -A -- "$kc_pd" >/dev/null 2>&1 || { [ -d "$kc_pd" ] && printf 'unreadable: %s\n' "$kc_pd"; }
    continue
  fi
  stat -L -c '%F/%Hr:%Lr/%Hd:%Ld:%i/%n' -- "$@" 2>&1
done)
kc_hit=$(printf '%s\n' "$kc_fds" | awk -v keys="$kc_keys" '
  BEGIN { n = split(keys, k, " "); for (i = 1; i <= n; i++) want[k[i]] = 1 }
  $0 == "" { next }
  /^stat: / && /No such file or directory/ { next }
  !/^[a-z ]+\/[0-9]+:[0-9]+\/[0-9]+:[0-9]+:[0-9]+\// { print "E " $0; exit }
  { split($0, f, "/"); key = (f[1] == "block special file") ? "b" f[2] : "i" f[3]
    if (key in want) { p = $0; sub(/^[^\/]*\/[^\/]*\/[^\/]*\//, "", p); print "H " p; exit } }')
case "$kc_hit" in
  "E "*) refuse "cannot read every process's open files: ${kc_hit#E }" ;;
  "H "*) kc_fd=${kc_hit#H }; kc_pid=${kc_fd#"$kc_proc"/}; kc_pid=${kc_pid%%/*}
         kc_comm=$(cat "$kc_proc/$kc_pid/comm" 2>/dev/null) || kc_comm="?"
         refuse "$kc_real is open by process $kc_pid ($kc_comm): $kc_fd" ;;
esac
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
[ -z "$(wipefs --noheadings -- "$kc_real" 2>/dev/null)" ] || { printf 'signatures left on %s after wiping\n' "$kc_real" >&2; exit 1; }
"""  # noqa: E501 - a shell script: its messages stay whole


def guarded_wipe_script(device: str, expected_device: str, paths: GuardPaths = REAL):
    """One POSIX shell script: verify every condition, then wipe. Values are quoted into variables
    at the top (``assign``) and only ever used as ``"$variables"`` in the fixed script below."""
    values = (("kc_dev", device), ("kc_expected", expected_device), ("kc_mountinfo", paths.mountinfo),
              ("kc_mounts", paths.mounts), ("kc_swaps", paths.swaps), ("kc_sys_block", paths.sys_block),
              ("kc_dev_dir", paths.dev_dir), ("kc_proc", paths.proc), ("kc_zpool", paths.zpool),
              ("kc_require_block", 1 if paths.require_block_device else 0))
    parts: list[Part] = []
    for name, value in values:
        parts += [assign(name, value), THEN]
    return cmd(*parts, sh(_GUARD))


def _truthy(value) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


@operation(is_idempotent=False)
def wipe_disk(device: str, expected_device: str, allow: bool = False):
    """Erase every partition table and filesystem signature on a whole disk
    (guide: "Complete System Rebuild": ``wipefs -a DEV`` then ``sgdisk --zap-all DEV``).

    + device: the operator's consent, ``HOST:DEVICE[,HOST:DEVICE...]`` (host data ``destructive_device``);
      the entry for this host must name exactly ``expected_device``
    + expected_device: the inventory's declared disk (host data ``disk``)
    + allow: the operator's opt-in (host data ``allow_destructive``)

    Destructive. Runs as ONE guarded shell command that re-verifies on the host, right before
    wiping, that the device is the inventory's disk and that nothing uses it; otherwise it exits
    3 with ``refusing: <reason>`` and writes nothing.

    **Example:**

    .. code:: python

        disks.wipe_disk(device="server1:/dev/disk/by-id/nvme-X", expected_device="/dev/disk/by-id/nvme-X", allow=True)
    """
    if not _truthy(allow):
        raise OperationValueError("refusing: destructive operation without allow_destructive=true")
    if not device or not expected_device:
        raise OperationValueError("refusing: wipe_disk needs both the named device and the inventory's disk")
    named = consented_device(device, host.name) if ":/" in device else None
    if named is None:
        raise OperationValueError(f"refusing: destructive_device {device!r} does not name this host "
                                  f"({host.name}:<disk>)")
    if named != expected_device:
        raise OperationValueError(f"refusing: named device {named!r} is not the inventory's disk {expected_device!r}")
    yield guarded_wipe_script(named, expected_device)
