"""Fixes for the credstore LUKS mapping."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import StringCommand, operation

from ..engine.commands import THEN, assign, cmd, sh
from ..facts.luks import MappingStatus
from . import read_fact


@operation()
def close_mapping(mapping: str):
    """Unmount and close a LUKS mapping (guide: "cryptsetup close credstore").

    + mapping: mapping name, e.g. ``credstore``

    Disruptive: the ZFS key inside becomes unreadable until reopened (loaded keys stay loaded).

    **Example:**

    .. code:: python

        luks.close_mapping(mapping="credstore")
    """
    status = read_fact(MappingStatus, mapping=mapping)
    if not status or not status.get("active"):
        host.noop(f"LUKS mapping {mapping} is already closed")
        return
    for mountpoint in status.get("mounted_at", []):
        yield cmd("umount", "--", mountpoint)
    yield cmd("cryptsetup", "close", "--", mapping)


@operation()
def open_mapping(mapping: str, device: str, passphrase_file: str = "", passphrase_env: str = ""):
    """Open a LUKS volume as ``/dev/mapper/<mapping>`` (guide: ``cryptsetup open DEVICE credstore``).

    + mapping: mapping name (host data ``credstore_name``)
    + device: the LUKS device (host data ``credstore_device``)
    + passphrase_file: controller-side file holding the passphrase (host data ``luks_passphrase_file``)
    + passphrase_env: controller-side environment variable holding it (host data ``luks_passphrase_env``)

    The passphrase is read on the controller (keystone_checks.secrets) and sent as the command's
    STDIN over the SSH channel: it is never part of a command line, an operation argument, a log
    line or a report. ``cryptsetup`` reads a passphrase from a non-terminal stdin up to the newline.

    **Example:**

    .. code:: python

        luks.open_mapping(mapping="credstore", device="/dev/zvol/rpool/credstore",
                          passphrase_file="~/.keystone/credstore.pass")
    """
    from pyinfra.api.exceptions import OperationValueError

    from ..secrets import SecretError, resolve_passphrase

    # cryptsetup status exits 4 for an inactive mapping: an answer, not a failure of the fact.
    status = read_fact(MappingStatus, mapping=mapping)
    if status and status.get("active"):
        host.noop(f"LUKS mapping {mapping} is already open")
        return
    try:
        passphrase = resolve_passphrase(passphrase_file, passphrase_env)
    except SecretError as exc:
        raise OperationValueError(str(exc)) from None
    yield cmd("cryptsetup", "open", "--type", "luks", "--", device, mapping, _stdin=passphrase)


@operation()
def close_after_recovery(mapping: str):
    """Unmount and close the credstore at the end of a recovery from the ISO, once the key it holds
    is loaded: Keystone never leaves the raw key readable (its initrd closes the credstore before
    switch-root). Decided when it runs, not when the fix is planned: the recovery opens the
    credstore in an earlier step of the same run.

    + mapping: mapping name (host data ``credstore_name``)

    Loaded keys stay loaded; the datasets stay mountable. Idempotent: nothing to do when closed.

    **Example:**

    .. code:: python

        luks.close_after_recovery(mapping="credstore")
    """
    yield close_commands(mapping)


def close_commands(mapping: str) -> StringCommand:
    """Unmount every mount of ``/dev/mapper/<mapping>`` and close it if open (also used by a
    refused ``zfs.load_key`` in a recovery, so a refusal never leaves the credstore open)."""
    return cmd(assign("kc_map", mapping), THEN, assign("kc_dev", "/dev/mapper/" + mapping), THEN,
               sh(_CLOSE_AFTER_RECOVERY))


# Unmount every mount of the mapping (it may be mounted twice), then close it if it is open.
_CLOSE_AFTER_RECOVERY = (
    "while awk -v d=\"$kc_dev\" '$1 == d { f = 1 } END { exit !f }' /proc/mounts; do umount -- \"$kc_dev\" || exit 1; done; "
    "if cryptsetup status -- \"$kc_map\" >/dev/null 2>&1; then cryptsetup close -- \"$kc_map\"; fi")


@operation()
def unlock_load_key(mapping: str, device: str, path: str, dataset: str, key_file: str,
                    pool: str = "rpool", passphrase_file: str = "", passphrase_env: str = ""):
    """Load an encryption root's key from the credstore WITHOUT leaving the credstore open: open
    it, mount it read-only, ``zfs load-key``, unmount and close it, in one command (a trap closes
    it on any failure). For a running host whose key is loaded in stage 2 (no initrd unlock).

    REFUSED on a Keystone host, where the initrd unlocks (its journal of this boot has
    ``<pool>-load-key.service``): there the credstore stays closed after switch-root by design, the
    raw key is never exposed to the running system; reboot (the initrd asks for the passphrase on
    the console, or TPM2 unlocks it) or recover from the ISO (playbooks/fix/emergency-access.py).

    + mapping: mapping name (host data ``credstore_name``)
    + device: the LUKS device (host data ``credstore_device``)
    + path: where to mount it (host data ``credstore_mount``; the key's keylocation points there)
    + dataset: encryption root (host data ``crypt_dataset``)
    + key_file: the key inside the mounted credstore (host data ``key_file``)
    + pool: pool name (host data ``pool``), for the initrd unit name
    + passphrase_file / passphrase_env: controller-side passphrase references (sent on stdin)

    **Example:**

    .. code:: python

        luks.unlock_load_key(mapping="credstore", device="/dev/zvol/rpool/credstore",
                             path="/etc/credstore", dataset="rpool/crypt",
                             key_file="/etc/credstore/zfs-sysroot.mount",
                             passphrase_file="~/.keystone/credstore.pass")
    """
    from pyinfra.api.exceptions import OperationValueError

    from ..secrets import SecretError, resolve_passphrase

    try:
        passphrase = resolve_passphrase(passphrase_file, passphrase_env)
    except SecretError as exc:
        raise OperationValueError(str(exc)) from None
    yield cmd(
        assign("kc_ds", dataset), THEN, assign("kc_map", mapping), THEN, assign("kc_dev", device), THEN,
        assign("kc_mnt", path), THEN, assign("kc_mapped", "/dev/mapper/" + mapping), THEN,
        assign("kc_unit", pool + "-load-key.service"), THEN, assign("kc_key", key_file), THEN,
        assign("kc_keyloc", "file://" + key_file), THEN,
        assign("kc_initrd", f"refusing: this host loads the key of {dataset} in its initrd ({pool}-load-key.service "
                            "ran this boot), and the credstore stays closed in the running system by design. Reboot "
                            "(the initrd asks for the credstore passphrase on the console, or TPM2 unlocks it), or "
                            "recover from the ISO: playbooks/fix/emergency-access.py"), THEN,
        assign("kc_already", f"refusing: the mapping {mapping} is already open; close it first"), THEN,
        assign("kc_nokey", f"refusing: key file {key_file} is missing in the credstore (restore it from backup)"), THEN,
        sh(_UNLOCK_LOAD_KEY), _stdin=passphrase)


# Whatever happens after the open, the trap closes the credstore again: never left open.
_UNLOCK_LOAD_KEY = (
    "[ \"$(zfs get -H -o value keystatus -- \"$kc_ds\" </dev/null)\" = available ] && exit 0; "
    "if journalctl -b 0 -q --no-pager -n 1 -o cat -u \"$kc_unit\" </dev/null 2>/dev/null | grep -q .; then "
    "printf '%s\\n' \"$kc_initrd\" >&2; exit 1; fi; "
    "if cryptsetup status -- \"$kc_map\" </dev/null >/dev/null 2>&1; then printf '%s\\n' \"$kc_already\" >&2; exit 1; fi; "
    "kc_close() { umount -- \"$kc_mapped\" 2>/dev/null; cryptsetup close -- \"$kc_map\" 2>/dev/null; }; trap kc_close EXIT; "
    "cryptsetup open --type luks -- \"$kc_dev\" \"$kc_map\" || exit 1; "
    "mkdir -p -- \"$kc_mnt\" && mount -o ro -- \"$kc_mapped\" \"$kc_mnt\" || exit 1; "
    "[ -f \"$kc_key\" ] || { printf '%s\\n' \"$kc_nokey\" >&2; exit 1; }; "
    "zfs load-key -L \"$kc_keyloc\" -- \"$kc_ds\" </dev/null")
