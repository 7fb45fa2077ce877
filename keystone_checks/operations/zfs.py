"""Fixes for ZFS pools and the zfs kernel module."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation

from ..engine.commands import AND, EXIT_0, OR, QUIET, THEN, Syntax, assign, cmd, fail, refuse, sh, var
from ..facts.system import MountsUnder
from ..facts.zfs import DatasetProperties, ImportedPools, ModuleStatus, PoolStatus
from . import read_fact

EXPORT_TIMEOUT = 120  # ZFS 2.3 hangs an export forever while a zvol is held open; never wait forever

def _imported(pool: str) -> bool:
    listed = read_fact(ImportedPools, pool=pool)
    return bool(listed and listed.get("imported"))


def _is_imported_or_exit(pool: str):
    """``zpool list -H -o name -- POOL >/dev/null 2>&1 || exit 0``: decided again on the host when the
    command runs (an earlier fix in the same run may already have exported it)."""
    return cmd("zpool", "list", "-H", "-o", "name", "--", pool, QUIET, OR, EXIT_0)


def _refuse_while_open(mapping: str, message: str):
    """``cryptsetup status -- MAP >/dev/null 2>&1 && { printf ... >&2; exit 1; }``"""
    return cmd("cryptsetup", "status", "--", mapping, QUIET, AND, fail(message))


def _export(*what):
    return cmd("timeout", "-k", "5", EXPORT_TIMEOUT, "zpool", "export", *what)


def _release_foreign_mounts(pool: str):
    """Unmount what is mounted *on* the pool's mounted datasets but is not ZFS (the ESP at
    ``/mnt/boot`` on a root dataset at ``/mnt``), deepest first: ``zpool export`` cannot unmount a
    dataset with another filesystem on top ("cannot unmount '/mnt': pool or dataset is busy").
    nixos-anywhere does the same with ``umount -R /mnt`` before ``zpool export -a``. A dataset
    mounted at ``/`` is never taken as a root to clear (that is the running system)."""
    return cmd(assign("kc_pool", pool), THEN, sh(_RELEASE_FOREIGN_MOUNTS))


_RELEASE_FOREIGN_MOUNTS = (
    "kc_mps=$(zfs list -H -o mountpoint,mounted -r -t filesystem -- \"$kc_pool\" 2>/dev/null | "
    "awk -F '\\t' '$2 == \"yes\" && $1 ~ /^\\/./ { print $1 }'); "
    "if [ -n \"$kc_mps\" ]; then printf '%s\\n' \"$kc_mps\" | "
    "awk 'NR == FNR { m[$0] = 1; next } $3 != \"zfs\" { for (p in m) if (index($2, p \"/\") == 1) "
    "{ print length($2) \"\\t\" $2; break } }' - /proc/mounts | sort -rn | cut -f2- | "
    "while IFS= read -r kc_m; do umount -- \"$kc_m\" || exit 1; done || exit 1; fi"
)


@operation()
def load_module():
    """Load the zfs kernel module (guide: "modprobe zfs").

    **Example:**

    .. code:: python

        zfs.load_module()
    """
    status = read_fact(ModuleStatus)
    if status and status.get("loaded"):
        host.noop("zfs module already loaded")
        return
    yield cmd("modprobe", "zfs")


@operation()
def export_pool(pool: str, credstore_mapping: str = "credstore"):
    """Export a pool, refusing while the credstore LUKS mapping on its zvol is still open. Other
    filesystems mounted on its datasets (the ESP at ``/mnt/boot``) are unmounted first, as
    nixos-anywhere's ``umount -R /mnt`` would.

    + pool: pool name, e.g. ``rpool``
    + credstore_mapping: mapping that must be closed first (an open one makes the export hang)

    **Example:**

    .. code:: python

        zfs.export_pool(pool="rpool")
    """
    if not _imported(pool):
        host.noop(f"pool {pool} is not imported")
        return
    yield cmd(
        _is_imported_or_exit(pool), THEN,
        _refuse_while_open(credstore_mapping, f"refusing to export {pool}: LUKS mapping {credstore_mapping} "
                                              "is still open (close it first)"), THEN,
        _release_foreign_mounts(pool), THEN,
        _export("--", pool),
    )


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
    listed = read_fact(ImportedPools, pool="")
    if not listed or not listed.get("pools"):
        host.noop("no pool is imported")
        return
    yield cmd(
        sh('[ -n "$(zpool list -H -o name 2>/dev/null)" ]'), OR, EXIT_0, THEN,
        _refuse_while_open(credstore_mapping, f"refusing to export: LUKS mapping {credstore_mapping} "
                                              "is still open (close it first)"), THEN,
        _export("-a"),
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
    no_mount = () if mount else ("-N",)
    alt = ("-R", altroot) if altroot else ()
    if allow_force is True:
        force = cmd("zpool", "import", "-f", *no_mount, *alt, "--", pool)
    else:
        force = refuse(f"pool {pool} was last accessed by another system and needs zpool import -f; "
                       "rerun with --data allow_force_import=true if no other system uses it")
    yield cmd(
        "zpool", "list", "-H", "-o", "name", "--", pool, QUIET, AND, EXIT_0, THEN,
        Syntax("if"), "zpool", "import", Syntax("2>&1"), Syntax("|"), assign("kc_pool", pool), "awk", _NEEDS_FORCE,
        Syntax("; then"), force, Syntax("; else"), "zpool", "import", *no_mount, *alt, "--", pool, Syntax("; fi"),
    )


# Reads `zpool import` (no arguments): true when the block of pool $kc_pool (compared as a string,
# never as a pattern) says it was last accessed by another system.
_NEEDS_FORCE = ('BEGIN { p = ENVIRON["kc_pool"] } '
                '/^ *pool: / { sub(/^ *pool: /, ""); n = ($0 == p) ? 5 : 0; next } '
                'n > 0 { n--; if (/another system/) f = 1 } END { exit !f }')


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
        yield refuse(f"zpool import -f {pool}: it can corrupt a pool in use by another system; "
                     "rerun with --data allow_force_import=true")
        return
    # cachefile=none: the installer it runs on keeps no record of a pool it only repairs (its own
    # root stays as it was; found by the lab's recovery, which fingerprints the ISO's /etc).
    yield cmd("zpool", "list", "-H", "-o", "name", "--", pool, QUIET, OR,
              "zpool", "import", "-f", "-N", "-o", "cachefile=none", "--", pool)
    yield cmd("zpool", "scrub", "--", pool, AND, "zpool", "wait", "-t", "scrub", "--", pool)
    yield cmd(
        Syntax("if"), "cryptsetup", "status", "--", credstore_mapping, QUIET, Syntax("; then"),
        "umount", "--", f"/dev/mapper/{credstore_mapping}", Syntax("2>/dev/null"), THEN,
        "cryptsetup", "close", "--", credstore_mapping, Syntax("; fi"), THEN,
        _export("--", pool),
    )


# Always `zpool import -f`: the runner refuses to queue it without --data allow_force_import=true
# (and the operation refuses on the host too). import_pool only forces when it finds the pool was
# last used by another system, and checks the same consent itself.
force_import_scrub_export.forces_import = True  # type: ignore[attr-defined] # read by fixing.forces_import


@operation()
def stop_scrub(pool: str):
    """Stop a running scrub (guide: "zpool scrub -s rpool"). Disruptive in the sense that the scrub's
    verification is abandoned; start it again later (``zpool scrub rpool``).

    + pool: pool name

    **Example:**

    .. code:: python

        zfs.stop_scrub(pool="rpool")
    """
    status = read_fact(PoolStatus, pool=pool)
    if not status or not status.get("scrub_running"):
        host.noop(f"no scrub is running on {pool}")
        return
    yield cmd("zpool", "scrub", "-s", "--", pool)


def _key_location(props: dict | None, key_file: str) -> str:
    location = ((props or {}).get("keylocation") or "").strip()
    if location.startswith(("file://", "https://", "http://")):
        return location
    return "file://" + key_file


@operation()
def load_key(dataset: str, key_file: str = "/etc/credstore/zfs-sysroot.mount", close_mapping: str = ""):
    """Load an encryption root's key and mount the datasets (guide: "zfs load-key -L file://... rpool/crypt;
    zfs mount -a"). The location is the dataset's own ``keylocation`` property when it is a file/URL,
    otherwise ``file://<key_file>``. The key is never printed; a missing key file is refused.

    + dataset: encryption root, e.g. ``rpool/crypt``
    + key_file: key file in the mounted credstore (host data ``key_file``)
    + close_mapping: the credstore mapping a recovery opened for this step (host data
      ``credstore_name``): when the key file is missing the refusal unmounts and closes it first,
      as the recovery's own close step (which a refused step stops) would have. Found in the lab:
      a credstore that lost its key stayed open on the ISO after the refused recovery.

    **Example:**

    .. code:: python

        zfs.load_key(dataset="rpool/crypt", key_file="/etc/credstore/zfs-sysroot.mount")
    """
    props = read_fact(DatasetProperties, dataset=dataset)
    if props and props.get("keystatus") == "available":
        host.noop(f"key of {dataset} is already loaded")
        return
    location = _key_location(props, key_file)
    path = location[len("file://"):] if location.startswith("file://") else None
    refusal = refuse(f"key file {path} is missing (credstore not mounted, or key lost: restore it from backup)")
    if close_mapping:
        from .luks import close_commands

        refusal = cmd(Syntax("{"), close_commands(close_mapping), THEN, refusal, THEN, Syntax("}"))
    check_file = () if path is None else ("test", "-f", path, OR, refusal, THEN)
    yield cmd(
        assign("kc_ds", dataset), THEN,
        sh('if [ "$(zfs get -H -o value keystatus -- "$kc_ds")" != available ]; then'),
        *check_file, "zfs", "load-key", "-L", location, "--", var("kc_ds"), Syntax("; fi"),
    )


@operation()
def mount_all(dataset: str = ""):
    """Mount every mountable ZFS dataset (guide: "zfs mount -a"). Safe: mounting changes no data.

    + dataset: only for the no-op test: the dataset tree whose ``mounted`` state is checked first

    **Example:**

    .. code:: python

        zfs.mount_all(dataset="rpool/crypt")
    """
    if dataset:
        props = read_fact(DatasetProperties, dataset=dataset)
        if props and props.get("exists") and not props.get("unmounted"):
            host.noop(f"datasets under {dataset} are mounted")
            return
    yield cmd("zfs", "mount", "-a")


@operation()
def unmount_recursive(path: str = "/mnt"):
    """Unmount everything at and below ``path`` (guide: "umount -R /mnt"), so the pool can be exported.

    + path: top of the tree, e.g. ``/mnt``

    Disruptive: an installation mounted there is no longer reachable until remounted.

    **Example:**

    .. code:: python

        zfs.unmount_recursive(path="/mnt")
    """
    if not read_fact(MountsUnder, path=path):
        host.noop(f"nothing is mounted under {path}")
        return
    # Deepest first, each mount by itself: `umount -R /mnt` fails when /mnt itself is not a mount
    # point (only datasets below it are), and the list is read when it runs (an earlier fix in the
    # same run may have unmounted some).
    yield cmd(assign("kc_top", path.rstrip("/") or "/"), THEN, sh(_UNMOUNT_BELOW))


# Every mount point at or below "$kc_top" (compared as strings), deepest first, unmounted one by one.
_UNMOUNT_BELOW = ('export kc_top; awk \'BEGIN { p = ENVIRON["kc_top"]; q = (p == "/") ? p : p "/" } '
                  '$2 == p || index($2, q) == 1 { print $2 }\' /proc/mounts | sort -r | '
                  'while read -r m; do umount -- "$m" || exit 1; done')


def mount_plan_script(pool: str, dataset: str, root: str):
    """The command that mounts ``dataset``'s tree under ``root`` (see :func:`mount_datasets`).

    Decided on the host when it runs (the pool is usually imported by the step before): the pool's
    altroot must be ``root``; each dataset's target is its ``mountpoint`` as ZFS reports it (the
    altroot already prefixed: ``/`` shows as ``/mnt``); every target is checked to be ``root`` or
    below it BEFORE anything is mounted; then mounted by depth (``/mnt``, ``/mnt/nix``, ``/mnt/var``, ...).
    """
    return cmd(
        assign("kc_pool", pool), THEN, assign("kc_ds", dataset), THEN, assign("kc_root", root), THEN,
        assign("kc_why", f"its datasets would mount over the running system's own directories. Export it "
                         f"(zpool export {pool}) and import it again with zpool import -N -R {root} {pool}"), THEN,
        sh(_MOUNT_PLAN),
    )


# One line per dataset to mount (depth, name, target, how, mounted), refused as a whole when any
# target falls outside "$kc_root" or the pool's altroot is not "$kc_root".
_MOUNT_PLAN = (
    "kc_alt=$(zpool get -H -o value -- altroot \"$kc_pool\") || exit 1; "
    "if [ \"$kc_alt\" != \"$kc_root\" ]; then printf 'refusing to mount: pool %s is imported with altroot %s, not %s: %s\\n' "
    "\"$kc_pool\" \"'$kc_alt'\" \"$kc_root\" \"$kc_why\" >&2; exit 1; fi; "
    "kc_list=$(zfs list -H -o name,mountpoint,canmount,mounted -r -t filesystem -- \"$kc_ds\") || exit 1; "
    "kc_plan=$(printf '%s\\n' \"$kc_list\" | awk -F '\\t' -v r=\"$kc_root\" '"
    "NF < 4 || $3 == \"off\" || $2 == \"none\" || $2 == \"-\" { next } "
    "{ t = $2; how = \"zfsutil\"; "
    "if (t == \"legacy\") { how = \"legacy\"; n = split($1, a, \"/\"); t = (a[n] == \"root\") ? r : r \"/\" a[n] } "
    "if ((t != r && index(t, r \"/\") != 1) || t ~ /(^|\\/)\\.\\.?(\\/|$)/) { print \"outside\\t\" $1 \"\\t\" t; next } "
    "d = (t == r) ? 0 : split(substr(t, length(r) + 1), s, \"/\") - 1; "
    "print d \"\\t\" $1 \"\\t\" t \"\\t\" how \"\\t\" $4 }' | sort -t \"$(printf '\\t')\" -k1,1n -k3,3) || exit 1; "
    "kc_bad=$(printf '%s\\n' \"$kc_plan\" | awk -F '\\t' '$1 == \"outside\" { print $2 \" -> \" $3 }'); "
    "if [ -n \"$kc_bad\" ]; then printf 'refusing to mount: target outside %s: %s\\n' \"$kc_root\" \"$kc_bad\" >&2; exit 1; fi; "
    "printf '%s\\n' \"$kc_plan\" | while IFS=\"$(printf '\\t')\" read -r kc_d kc_ds kc_t kc_how kc_m; do "
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
    device = f"/dev/mapper/{mapping}"
    mounts = read_fact(MountsUnder, path=path) or []
    if any(m["source"] == device and m["target"] == (path.rstrip("/") or "/") for m in mounts):
        host.noop(f"credstore already mounted at {path}")
        return
    yield cmd(
        Syntax("export"), assign("kc_dev", device), assign("kc_mnt", path), THEN,
        sh(_MOUNTED_THERE), AND, EXIT_0, THEN,
        sh('[ -b "$kc_dev" ]'), OR, refuse(f"credstore mapping {mapping} is not open (cryptsetup open first)"), THEN,
        sh('mkdir -p -- "$kc_mnt" && mount -- "$kc_dev" "$kc_mnt"'),
    )


# True when "$kc_dev" is mounted at "$kc_mnt" (/proc/mounts, compared as strings).
_MOUNTED_THERE = ('awk \'$1 == ENVIRON["kc_dev"] && $2 == ENVIRON["kc_mnt"] { f = 1 } END { exit !f }\' /proc/mounts')


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

    blocking = (read_fact(SwapHolders, pool=pool) or {}).get("blocking") or []
    if not blocking:
        host.noop(f"no swap on a zvol of {pool}")
        return
    for device in blocking:
        yield cmd("swapoff", "--", device)
