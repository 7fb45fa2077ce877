"""ZFS: kernel module, pools, datasets, keys, ARC."""

from __future__ import annotations

from .base import KeystoneFact


class ModuleStatus(KeystoneFact):
    """Whether the zfs kernel module is loaded, and whether the running kernel has one to load.

    Example: ``{"loaded": true, "version": "2.1.11-1", "kernel": "6.1.0-21-amd64", "available": true, "available_version": "2.1.11-1"}``
    """

    def command(self):
        return (
            "if [ -r /sys/module/zfs/version ]; then echo \"loaded $(cat /sys/module/zfs/version)\"; "
            "elif grep -q '^zfs ' /proc/modules 2>/dev/null; then echo 'loaded unknown'; else echo 'loaded no'; fi; "
            "echo \"kernel $(uname -r)\"; "
            "if command -v modinfo >/dev/null 2>&1; then "
            "v=$(modinfo -F version zfs 2>/dev/null) && echo \"available ${v:-unknown}\" || echo 'available no'; "
            "else echo 'available unknown'; fi"
        )

    def process(self, output):
        fields = {}
        for line in output:
            key, _, value = line.partition(" ")
            fields[key] = value.strip()
        loaded = fields.get("loaded", "no")
        available = fields.get("available", "unknown")
        return {
            "loaded": loaded != "no",
            "version": None if loaded in ("no", "unknown") else loaded,
            "kernel": fields.get("kernel") or None,
            "available": None if available == "unknown" else (available != "no" or loaded != "no"),
            "available_version": None if available in ("no", "unknown") else available,
        }
