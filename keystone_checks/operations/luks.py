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
    status = host.get_fact(MappingStatus, mapping=mapping)
    if not status or not status.get("active"):
        host.noop(f"LUKS mapping {mapping} is already closed")
        return
    for mountpoint in status.get("mounted_at", []):
        yield f"umount {shell_quote(mountpoint)}"
    yield f"cryptsetup close {shell_quote(mapping)}"
