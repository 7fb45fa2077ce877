"""Fixes for the credstore LUKS mapping."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation

from ..commands import cmd
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
