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
    # Decided again when it runs: an earlier fix in the same run may already have exported it.
    yield (
        f"zpool list -H -o name {shell_quote(pool)} >/dev/null 2>&1 || exit 0; "
        f"if cryptsetup status {mapping} >/dev/null 2>&1; then "
        f"echo 'refusing to export {pool}: LUKS mapping {credstore_mapping} is still open (close it first)' >&2; exit 1; fi; "
        f"timeout -k 5 {EXPORT_TIMEOUT} zpool export {shell_quote(pool)}"
    )


def _imported(pool: str) -> bool:
    return bool(host.get_fact(Command, f"zpool list -H -o name 2>/dev/null | grep -Fx {shell_quote(pool)} || true"))


@operation()
def export_all(credstore_mapping: str = "credstore"):
    """Export every imported pool (guide: "zpool export -a"), refusing while the credstore mapping
    is open (the export would hang on ZFS 2.3).

    + credstore_mapping: LUKS mapping that must be closed first

    Disruptive: datasets are unmounted and the pools released.

    **Example:**

    .. code:: python

        zfs.export_all()
    """
    if not host.get_fact(Command, "zpool list -H -o name 2>/dev/null || true"):
        host.noop("no pool is imported")
        return
    mapping = shell_quote(credstore_mapping)
    yield (
        "[ -n \"$(zpool list -H -o name 2>/dev/null)\" ] || exit 0; "
        f"if cryptsetup status {mapping} >/dev/null 2>&1; then "
        f"echo 'refusing to export: LUKS mapping {credstore_mapping} is still open (close it first)' >&2; exit 1; fi; "
        f"timeout -k 5 {EXPORT_TIMEOUT} zpool export -a"
    )


@operation()
def import_pool(pool: str, allow_force: bool = False, mount: bool = False, altroot: str = ""):
    """Import a pool without mounting its datasets (guide: "zpool import -N rpool"). When
    ``zpool import`` says the pool was last used by another system (needs ``-f``), import with ``-f``
    only if ``allow_force`` is true (host data ``allow_force_import``), otherwise refuse.

    + pool: pool name
    + allow_force: permit ``zpool import -f`` (can corrupt a pool that another system is using)
    + mount: mount the datasets too (plain ``zpool import``); default ``-N``
    + altroot: import with ``-R ALTROOT`` (recovery from the ISO: ``/mnt``), so every mountpoint of
      the pool, ``/`` included, lands under it and never over the running system

    **Example:**

    .. code:: python

        zfs.import_pool(pool="rpool", allow_force=False)
        zfs.import_pool(pool="rpool", altroot="/mnt")  # from the ISO
    """
    if _imported(pool):
        host.noop(f"pool {pool} is already imported")
        return
    q = shell_quote(pool)
    args = ("" if mount else "-N ") + (f"-R {shell_quote(altroot)} " if altroot else "")
    if allow_force is True:
        force = f"zpool import -f {args}-- {q}"
    else:
        force = (f"echo {shell_quote(f'refusing: pool {pool} was last accessed by another system and needs zpool import -f; rerun with --data allow_force_import=true if no other system uses it')} >&2; exit 1")
    yield (
        f"if zpool list -H -o name {q} >/dev/null 2>&1; then exit 0; fi; "
        f"if zpool import 2>&1 | grep -A4 -E '^ *pool: '{shell_quote(_ere_literal(pool))}'$' | grep -q 'another system'; "
        f"then {force}; else zpool import {args}-- {q}; fi"
    )


def _ere_literal(text: str) -> str:
    """``text`` as a literal inside an extended regular expression."""
    import re

    return re.sub(r"([][\\.^$*+?(){}|])", r"\\\1", str(text))


@operation()
def force_import_scrub_export(pool: str, allow_force: bool = False, credstore_mapping: str = "credstore"):
    """The guide's repair for a pool that was not exported cleanly: ``zpool import -f``, scrub
    (waiting for it with ``zpool wait -t scrub``), ``zpool export``.

    Refuses unless ``allow_force`` is true (host data ``allow_force_import``): importing with ``-f``
    a pool that another running system still uses corrupts it. Disruptive; can take long.

    + pool: pool name
    + allow_force: explicit opt-in to ``zpool import -f``
    + credstore_mapping: mapping to close before the export

    **Example:**

    .. code:: python

        zfs.force_import_scrub_export(pool="rpool", allow_force=True)
    """
    if allow_force is not True:
        yield (f"echo 'refusing zpool import -f {pool}: it can corrupt a pool in use by another system; "
               "rerun with --data allow_force_import=true' >&2; exit 1")
        return
    q = shell_quote(pool)
    yield f"zpool list -H -o name {q} >/dev/null 2>&1 || zpool import -f -N {q}"
    yield f"zpool scrub {q} && zpool wait -t scrub {q}"
    yield (f"if cryptsetup status {shell_quote(credstore_mapping)} >/dev/null 2>&1; then "
           f"umount /dev/mapper/{shell_quote(credstore_mapping)} 2>/dev/null; cryptsetup close {shell_quote(credstore_mapping)}; fi; "
           f"timeout -k 5 {EXPORT_TIMEOUT} zpool export {q}")


# Always `zpool import -f`: the runner refuses to queue it without --data allow_force_import=true
# (and the operation refuses on the host too). import_pool only forces when it finds the pool was
# last used by another system, and checks the same consent itself.
force_import_scrub_export.forces_import = True


@operation()
def stop_scrub(pool: str):
    """Stop a running scrub (guide: "zpool scrub -s rpool"). Disruptive in the sense that the scrub's
    verification is abandoned; start it again later (``zpool scrub rpool``).

    + pool: pool name

    **Example:**

    .. code:: python

        zfs.stop_scrub(pool="rpool")
    """
    q = shell_quote(pool)
    running = host.get_fact(Command, f"zpool status {q} 2>/dev/null | grep -E '^ *scan: scrub in progress' || true")
    if not running:
        host.noop(f"no scrub is running on {pool}")
        return
    yield f"zpool scrub -s {q}"


def _key_location(dataset: str, key_file: str) -> str:
    location = host.get_fact(Command, f"zfs get -H -o value keylocation {shell_quote(dataset)} 2>/dev/null || true")
    location = (location or "").strip()
    if location.startswith("file://") or location.startswith("https://") or location.startswith("http://"):
        return location
    return "file://" + key_file


@operation()
def load_key(dataset: str, key_file: str = "/etc/credstore/zfs-sysroot.mount"):
    """Load an encryption root's key and mount the datasets (guide: "zfs load-key -L file://... rpool/crypt;
    zfs mount -a"). The location is the dataset's own ``keylocation`` property when it is a file/URL,
    otherwise ``file://<key_file>``. The key is never printed; a missing key file is refused.

    + dataset: encryption root, e.g. ``rpool/crypt``
    + key_file: key file in the mounted credstore (host data ``key_file``)

    **Example:**

    .. code:: python

        zfs.load_key(dataset="rpool/crypt", key_file="/etc/credstore/zfs-sysroot.mount")
    """
    q = shell_quote(dataset)
    status = host.get_fact(Command, f"zfs get -H -o value keystatus {q} 2>/dev/null || true")
    if (status or "").strip() == "available":
        host.noop(f"key of {dataset} is already loaded")
        return
    location = _key_location(dataset, key_file)
    path = location[len("file://"):] if location.startswith("file://") else None
    check_file = (f"[ -f {shell_quote(path)} ] || {{ echo 'refusing: key file {path} is missing (credstore not "
                  "mounted, or key lost: restore it from backup)' >&2; exit 1; }; ") if path else ""
    yield (f"if [ \"$(zfs get -H -o value keystatus {q})\" != available ]; then {check_file}"
           f"zfs load-key -L {shell_quote(location)} {q}; fi")


@operation()
def mount_all(dataset: str = ""):
    """Mount every mountable ZFS dataset (guide: "zfs mount -a"). Safe: mounting changes no data.

    + dataset: only for the no-op test: the dataset tree whose ``mounted`` state is checked first

    **Example:**

    .. code:: python

        zfs.mount_all(dataset="rpool/crypt")
    """
    if dataset:
        unmounted = host.get_fact(Command, (
            f"zfs get -H -o name,value,property -r mounted,canmount,mountpoint {shell_quote(dataset)} 2>/dev/null "
            "| awk '$3==\"mounted\" && $2==\"no\" {print $1}' || true"))
        if not unmounted:
            host.noop(f"datasets under {dataset} are mounted")
            return
    yield "zfs mount -a"


@operation()
def unmount_recursive(path: str = "/mnt"):
    """Unmount everything at and below ``path`` (guide: "umount -R /mnt"), so the pool can be exported.

    + path: top of the tree, e.g. ``/mnt``

    Disruptive: an installation mounted there is no longer reachable until remounted.

    **Example:**

    .. code:: python

        zfs.unmount_recursive(path="/mnt")
    """
    q = shell_quote(path)
    below = f"awk -v p={q} '$2==p || index($2, p \"/\")==1 {{print $2}}' /proc/mounts"
    if not host.get_fact(Command, f"{below} || true"):
        host.noop(f"nothing is mounted under {path}")
        return
    # Deepest first, each mount by itself: `umount -R /mnt` fails when /mnt itself is not a mount
    # point (only datasets below it are), and the list is read when it runs (an earlier fix in the
    # same run may have unmounted some).
    yield f"{below} | sort -r | while read -r m; do umount \"$m\" || exit 1; done"


def mount_plan_script(pool: str, dataset: str, root: str) -> str:
    """The shell that mounts ``dataset``'s tree under ``root`` (see :func:`mount_datasets`).

    Decided on the host when it runs (the pool is usually imported by the step before): the pool's
    altroot must be ``root``; each dataset's target is its ``mountpoint`` as ZFS reports it (the
    altroot already prefixed: ``/`` shows as ``/mnt``); every target is checked to be ``root`` or
    below it BEFORE anything is mounted; then mounted by depth (``/mnt``, ``/mnt/nix``, ``/mnt/var``, ...).
    """
    p, d, r = shell_quote(pool), shell_quote(dataset), shell_quote(root)
    tab = "\"$(printf '\\t')\""
    refuse_alt = shell_quote(f"refusing to mount: pool {pool} is imported with altroot ")
    refuse_alt2 = shell_quote(f", not {root}: its datasets would mount over the running system's own "
                              f"directories. Export it (zpool export {pool}) and import it again with "
                              f"zpool import -N -R {root} {pool}")
    return (
        f"kc_root={r}; kc_alt=$(zpool get -H -o value altroot {p}) || exit 1; "
        f"if [ \"$kc_alt\" != \"$kc_root\" ]; then printf '%s%s%s\\n' {refuse_alt} \"'$kc_alt'\" {refuse_alt2} >&2; exit 1; fi; "
        f"kc_list=$(zfs list -H -o name,mountpoint,canmount,mounted -r -t filesystem {d}) || exit 1; "
        # one line per dataset to mount: depth, name, target, how (zfsutil|legacy), mounted
        "kc_plan=$(printf '%s\\n' \"$kc_list\" | awk -F '\\t' -v r=\"$kc_root\" '"
        "NF < 4 || $3 == \"off\" || $2 == \"none\" || $2 == \"-\" { next } "
        "{ t = $2; how = \"zfsutil\"; "
        "if (t == \"legacy\") { how = \"legacy\"; n = split($1, a, \"/\"); t = (a[n] == \"root\") ? r : r \"/\" a[n] } "
        "if ((t != r && index(t, r \"/\") != 1) || t ~ /(^|\\/)\\.\\.?(\\/|$)/) { print \"outside\\t\" $1 \"\\t\" t; next } "
        "d = (t == r) ? 0 : split(substr(t, length(r) + 1), s, \"/\") - 1; "
        "print d \"\\t\" $1 \"\\t\" t \"\\t\" how \"\\t\" $4 }' | sort -t " + tab + " -k1,1n -k3,3) || exit 1; "
        "kc_bad=$(printf '%s\\n' \"$kc_plan\" | awk -F '\\t' '$1 == \"outside\" { print $2 \" -> \" $3 }'); "
        "if [ -n \"$kc_bad\" ]; then printf 'refusing to mount: target outside %s: %s\\n' \"$kc_root\" \"$kc_bad\" >&2; exit 1; fi; "
        "printf '%s\\n' \"$kc_plan\" | while IFS=" + tab + " read -r kc_d kc_ds kc_t kc_how kc_m; do "
        "[ -n \"$kc_ds\" ] || continue; [ \"$kc_m\" = yes ] && continue; "
        "mkdir -p -- \"$kc_t\" || exit 1; "
        "if [ \"$kc_how\" = legacy ]; then mount -t zfs -- \"$kc_ds\" \"$kc_t\" || exit 1; "
        "else mount -t zfs -o zfsutil -- \"$kc_ds\" \"$kc_t\" || exit 1; fi; done"
    )


@operation()
def mount_datasets(dataset: str, root: str = "/mnt", pool: str = ""):
    """Mount an imported system's datasets under ``root``, by their own mountpoints, parents first
    (guide, Emergency Access: root at /mnt, then nix, var, home), and NOTHING outside ``root``.

    On a Keystone pool ``rpool/crypt/system`` has ``mountpoint=/`` and ``system/nix`` ``/nix``: only
    with the pool imported under an altroot (``zpool import -N -R /mnt``, :func:`import_pool`) do
    they land at ``/mnt`` and ``/mnt/nix`` instead of over the ISO's own root. So the mount refuses,
    before mounting anything, unless the pool's ``altroot`` is ``root`` and every target is ``root``
    or below it. ``canmount=off`` and ``mountpoint=none`` are skipped; ``mountpoint=legacy`` datasets
    are mounted with ``mount -t zfs`` (the one named ``root`` at ``root``, others at
    ``root/<last name component>``); the others with ``mount -t zfs -o zfsutil`` at the target ZFS
    reports (the altroot applied), as NixOS mounts them.

    + dataset: the encrypted system tree, e.g. ``rpool/crypt``
    + root: where the system is assembled; must be the pool's altroot
    + pool: the pool (default: the first component of ``dataset``)

    **Example:**

    .. code:: python

        zfs.mount_datasets(dataset="rpool/crypt", root="/mnt")
    """
    root = "/" + str(root).strip("/")
    if root == "/":
        from pyinfra.api.exceptions import OperationValueError

        raise OperationValueError("mount_datasets: root must be a directory below / (e.g. /mnt), never / itself")
    yield mount_plan_script(pool or str(dataset).split("/")[0], dataset, root)


@operation()
def mount_credstore(mapping: str = "credstore", path: str = "/etc/credstore"):
    """Mount the open credstore mapping (guide: "mount /dev/mapper/credstore ..."), so ``zfs
    load-key`` finds the key file. Refuses while the mapping is closed. Safe.

    + mapping: mapping name (host data ``credstore_name``)
    + path: mount point (host data ``credstore_mount``)

    **Example:**

    .. code:: python

        zfs.mount_credstore(mapping="credstore", path="/etc/credstore")
    """
    dev = shell_quote(f"/dev/mapper/{mapping}")
    p = shell_quote(path)
    mounted = host.get_fact(Command, f"awk -v d={dev} -v p={p} '$1==d && $2==p' /proc/mounts || true")
    if mounted:
        host.noop(f"credstore already mounted at {path}")
        return
    yield (f"if awk -v d={dev} -v p={p} '$1==d && $2==p {{f=1}} END {{exit !f}}' /proc/mounts; then exit 0; fi; "
           f"[ -b {dev} ] || {{ echo 'refusing: credstore mapping {mapping} is not open (cryptsetup open first)' >&2; exit 1; }}; "
           f"mkdir -p {p} && mount {dev} {p}")


@operation()
def swapoff_pool_zvols(pool: str):
    """Turn off every active swap area that sits on a zvol of ``pool`` (directly or through
    dm-crypt): it holds the pool open and ``zpool export`` fails "pool is busy" (nixos-anywhere #420).
    Swap elsewhere is left alone.

    + pool: pool name (host data ``pool``)

    Disruptive: the pages in that swap move back to RAM (or the kernel refuses when they do not fit).

    **Example:**

    .. code:: python

        zfs.swapoff_pool_zvols(pool="rpool")
    """
    from ..facts.disks import SwapHolders

    fact = SwapHolders()
    lines = host.get_fact(Command, f"{fact.command(pool=pool)}") or ""
    blocking = fact.process(lines.splitlines() if isinstance(lines, str) else list(lines))["blocking"]
    if not blocking:
        host.noop(f"no swap on a zvol of {pool}")
        return
    for device in blocking:
        yield f"swapoff {shell_quote(device)}"
