"""Fixes for the credstore LUKS mapping."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation

from ..facts.base import shell_quote
from ..facts.luks import MappingStatus


@operation()
def close_mapping(mapping: str):
    """Unmount and close a LUKS mapping (guide: "cryptsetup close credstore").

    + mapping: mapping name, e.g. ``credstore``

    Disruptive: the ZFS key inside becomes unreadable until reopened (loaded keys stay loaded).

    **Example:**

    .. code:: python

        luks.close_mapping(mapping="credstore")
    """
    status = host.get_fact(MappingStatus, mapping=mapping, _success_exit_codes=sorted(MappingStatus.ok_exit_codes))
    if not status or not status.get("active"):
        host.noop(f"LUKS mapping {mapping} is already closed")
        return
    for mountpoint in status.get("mounted_at", []):
        yield f"umount {shell_quote(mountpoint)}"
    yield f"cryptsetup close {shell_quote(mapping)}"


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
    from pyinfra.api import StringCommand
    from pyinfra.api.exceptions import OperationValueError

    from ..secrets import SecretError, resolve_passphrase

    # cryptsetup status exits 4 for an inactive mapping: an answer, not a failure of the fact.
    status = host.get_fact(MappingStatus, mapping=mapping, _success_exit_codes=sorted(MappingStatus.ok_exit_codes))
    if status and status.get("active"):
        host.noop(f"LUKS mapping {mapping} is already open")
        return
    try:
        passphrase = resolve_passphrase(passphrase_file, passphrase_env)
    except SecretError as exc:
        raise OperationValueError(str(exc)) from None
    yield StringCommand(f"cryptsetup open --type luks {shell_quote(device)} {shell_quote(mapping)}", _stdin=passphrase)


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
    q = shell_quote(mapping)
    dev = shell_quote(f"/dev/mapper/{mapping}")
    yield (f"while awk -v d={dev} '$1 == d {{ f = 1 }} END {{ exit !f }}' /proc/mounts; do umount -- {dev} || exit 1; done; "
           f"if cryptsetup status -- {q} >/dev/null 2>&1; then cryptsetup close -- {q}; fi")


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
    from pyinfra.api import StringCommand
    from pyinfra.api.exceptions import OperationValueError

    from ..secrets import SecretError, resolve_passphrase

    try:
        passphrase = resolve_passphrase(passphrase_file, passphrase_env)
    except SecretError as exc:
        raise OperationValueError(str(exc)) from None
    q, dev, mnt, ds = shell_quote(mapping), shell_quote(device), shell_quote(path), shell_quote(dataset)
    mapped = shell_quote(f"/dev/mapper/{mapping}")
    unit = shell_quote(f"{pool}-load-key.service")
    refuse = shell_quote(
        f"refusing: this host loads the key of {dataset} in its initrd ({pool}-load-key.service ran this "
        "boot), and the credstore stays closed in the running system by design. Reboot (the initrd asks "
        "for the credstore passphrase on the console, or TPM2 unlocks it), or recover from the ISO: "
        "playbooks/fix/emergency-access.py")
    yield StringCommand(
        f"[ \"$(zfs get -H -o value keystatus -- {ds} </dev/null)\" = available ] && exit 0; "
        f"if journalctl -b 0 -q --no-pager -n 1 -o cat -u {unit} </dev/null 2>/dev/null | grep -q .; then echo {refuse} >&2; exit 1; fi; "
        f"if cryptsetup status -- {q} </dev/null >/dev/null 2>&1; then echo {shell_quote(f'refusing: the mapping {mapping} is already open; close it first')} >&2; exit 1; fi; "
        # whatever happens next, the credstore ends closed
        f"kc_close() {{ umount -- {mapped} 2>/dev/null; cryptsetup close -- {q} 2>/dev/null; }}; trap kc_close EXIT; "
        f"cryptsetup open --type luks -- {dev} {q} || exit 1; "
        f"mkdir -p -- {mnt} && mount -o ro -- {mapped} {mnt} || exit 1; "
        f"[ -f {shell_quote(key_file)} ] || {{ echo {shell_quote(f'refusing: key file {key_file} is missing in the credstore (restore it from backup)')} >&2; exit 1; }}; "
        f"zfs load-key -L {shell_quote('file://' + key_file)} -- {ds} </dev/null",
        _stdin=passphrase)
