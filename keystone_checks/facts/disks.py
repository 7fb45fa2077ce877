"""Block devices: is the inventory's target disk there, how big, what is on it."""

from __future__ import annotations

import json

from ..errors import UnparseableOutput
from .base import KeystoneFact, shell_quote

LSBLK_COLUMNS = "NAME,PATH,SIZE,TYPE,FSTYPE,MOUNTPOINT,PTTYPE,RO,MODEL,SERIAL"


def _num(value, what: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UnparseableOutput(f"lsblk: {what} is not a number: {value!r}") from None


def _bool(value) -> bool:
    # util-linux < 2.37 prints "0"/"1" strings, newer prints JSON booleans.
    return value in (True, 1, "1", "true")


def _device(raw: dict) -> dict:
    if not isinstance(raw, dict) or "name" not in raw:
        raise UnparseableOutput(f"lsblk: device entry without a name: {raw!r}")
    name = str(raw["name"])
    return {
        "name": name,
        "path": raw.get("path") or f"/dev/{name}",
        "size": _num(raw.get("size"), "size"),
        "type": raw.get("type"),
        "fstype": raw.get("fstype"),
        "mountpoint": raw.get("mountpoint"),
        "pttype": raw.get("pttype"),
        "ro": _bool(raw.get("ro")),
        "model": (raw.get("model") or "").strip() or None,
        "serial": raw.get("serial"),
        "children": [_device(c) for c in raw.get("children") or []],
    }


def parse_lsblk(text: str) -> list[dict]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnparseableOutput(f"lsblk -J printed invalid JSON: {exc}") from None
    devices = data.get("blockdevices") if isinstance(data, dict) else None
    if not isinstance(devices, list):
        raise UnparseableOutput("lsblk -J output has no 'blockdevices' list")
    return [_device(d) for d in devices]


def _walk(device: dict):
    yield device
    for child in device["children"]:
        yield from _walk(child)


class TargetDisk(KeystoneFact):
    """The disk named by the inventory, resolved through symlinks (``/dev/disk/by-id/...``).

    Arguments:
        path: device path from host data ``disk``

    Returns ``{"path", "exists", "resolved", "is_disk", "size", "model", "in_use": [...], "disks": [...]}``
    where ``disks`` lists every whole disk on the host (what an operator should pick from) and
    ``in_use`` lists mountpoints/filesystems found on the target.

    Example: ``{"path": "/dev/vda", "exists": true, "resolved": "/dev/vda", "is_disk": true, "size": 21474836480, ...}``
    """

    requires = "lsblk"

    def command(self, path):
        q = shell_quote(path)
        return f"if [ -e {q} ]; then echo \"resolved $(readlink -f {q})\"; fi; lsblk -J -b -o {LSBLK_COLUMNS}"

    def process(self, output):
        resolved = None
        if output and output[0].startswith("resolved "):
            resolved = output[0][len("resolved "):].strip()
            output = output[1:]
        devices = parse_lsblk("\n".join(output))
        disks = [{"path": d["path"], "size": d["size"], "model": d["model"]} for d in devices if d["type"] == "disk"]
        target = next((d for d in devices if resolved and d["path"] == resolved), None)
        in_use = []
        if target:
            for part in _walk(target):
                if part["mountpoint"]:
                    in_use.append(f"{part['path']} mounted at {part['mountpoint']}")
                elif part["fstype"] == "swap":
                    in_use.append(f"{part['path']} is a swap area")
        return {
            "exists": resolved is not None,
            "resolved": resolved,
            "is_disk": bool(target and target["type"] == "disk"),
            "size": target["size"] if target else None,
            "model": target["model"] if target else None,
            "pttype": target["pttype"] if target else None,
            "partitions": [c["path"] for c in target["children"]] if target else [],
            "in_use": in_use,
            "disks": disks,
        }

    def parse(self, result):
        self.raise_for_exit(result)
        return self.process(result.stdout)
