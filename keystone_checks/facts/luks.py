"""LUKS / device-mapper: the credstore mapping that holds the ZFS key."""

from __future__ import annotations

from ..errors import UnparseableOutput
from .base import KeystoneFact, shell_quote


class MappingStatus(KeystoneFact):
    """``cryptsetup status NAME``: is the mapping open, on what device, and where it is mounted.

    ``cryptsetup status`` exits 4 for an inactive mapping: that is an answer, not a failure.
    Reads no key material.

    Arguments:
        mapping: mapping name (host data ``credstore_name``)

    Example: ``{"name": "credstore", "active": true, "in_use": true, "type": "LUKS2", "device": "/dev/zd0", "mounted_at": ["/etc/credstore"]}``
    """

    requires = "cryptsetup"
    ok_exit_codes = frozenset({0, 4})

    def command(self, mapping):
        q = shell_quote(mapping)
        return (
            f"cryptsetup status {q}; kc_s=$?; echo '--mounts'; "
            f"awk -v d=/dev/mapper/{q} '$1 == d {{ print $2 }}' /proc/mounts; exit $kc_s"
        )

    def process(self, output):
        if not output:
            raise UnparseableOutput("cryptsetup status printed nothing")
        head = output[0].strip()
        if " is inactive" in head:
            active, in_use = False, False
        elif " is active" in head:
            active, in_use = True, "in use" in head
        else:
            raise UnparseableOutput(f"cryptsetup status: unexpected first line {head!r}")
        info: dict[str, str] = {}
        mounts: list[str] = []
        in_mounts = False
        for line in output[1:]:
            if line.strip() == "--mounts":
                in_mounts = True
                continue
            if in_mounts:
                if line.strip():
                    mounts.append(line.strip())
                continue
            key, sep, value = line.strip().partition(":")
            if sep:
                info[key.strip()] = value.strip()
        return {
            "name": head.split(" ")[0].removeprefix("/dev/mapper/"),
            "active": active,
            "in_use": in_use,
            "type": info.get("type"),
            "device": info.get("device"),
            "mode": info.get("mode"),
            "mounted_at": mounts,
        }
