"""Whole-system facts: filesystem space, memory, load."""

from __future__ import annotations

from ..errors import UnparseableOutput
from .base import KeystoneFact, parse_int, shell_quote


class DiskFree(KeystoneFact):
    """Space on the filesystem holding ``path``, in bytes (``df -B1``).

    Arguments:
        path: any path on the filesystem, e.g. ``/nix``

    Example: ``{"source": "rpool/crypt/system/nix", "fstype": "zfs", "size": 1e11, "used": ..., "avail": ..., "target": "/nix"}``
    """

    requires = "df"

    def command(self, path):
        return f"df -B1 --output=source,fstype,size,used,avail,target {shell_quote(path)}"

    def process(self, output):
        rows = [line for line in output if line.strip()]
        if len(rows) < 2 or not rows[0].split() or rows[0].split()[0] != "Filesystem":
            raise UnparseableOutput(f"df: expected a header and one row, got {rows[:3]!r}")
        parts = rows[-1].split()
        if len(parts) < 6:
            raise UnparseableOutput(f"df: expected 6 columns, got {rows[-1]!r}")
        # The source may contain spaces; the five right-hand columns cannot (target is last, may too).
        source, fstype, size, used, avail = parts[0], parts[1], parts[2], parts[3], parts[4]
        return {
            "source": source,
            "fstype": fstype,
            "size": parse_int(size, "df size"),
            "used": parse_int(used, "df used"),
            "avail": parse_int(avail, "df avail"),
            "target": " ".join(parts[5:]),
        }
