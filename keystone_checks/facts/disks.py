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
        # Candidates an operator could install to: whole disks, not zvols (zd*) or compressed RAM (zram*).
        disks = [{"path": d["path"], "size": d["size"], "model": d["model"]} for d in devices
                 if d["type"] == "disk" and not d["name"].startswith(("zd", "zram"))]
        target = next((d for d in devices if resolved and d["path"] == resolved), None)
        in_use = []
        if target:
            for part in _walk(target):
                # Active swap: lsblk prints MOUNTPOINT "[SWAP]" (no filesystem is mounted there).
                if part["mountpoint"] and part["mountpoint"] != "[SWAP]":
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


_RESOLVE = 'r=$(readlink -f {q}); echo "resolved $r"; [ -b "$r" ] || exit 0; '


def _text(value):
    return value if value is None or isinstance(value, str) else str(value)


def _resolved(output: list[str]) -> tuple[str | None, list[str]]:
    if not output or not output[0].startswith("resolved"):
        raise UnparseableOutput("expected a 'resolved PATH' line first")
    value = output[0][len("resolved"):].strip()
    return (value or None), output[1:]


class DiskMounts(KeystoneFact):
    """Mounted filesystems on the target disk and its partitions (``lsblk -J`` of that disk only).

    Arguments:
        path: the target disk (host data ``disk``)

    Example: ``{"resolved": "/dev/vda", "is_block": true, "mounts": [{"device": "/dev/vda2", "mountpoint": "/mnt"}]}``
    """

    requires = "lsblk"

    def command(self, path):
        return _RESOLVE.format(q=shell_quote(path)) + 'lsblk -J -b -o NAME,PATH,SIZE,TYPE,FSTYPE,MOUNTPOINT,PTTYPE,RO,MODEL,SERIAL "$r"'

    def process(self, output):
        resolved, rest = _resolved(output)
        if not any(line.strip() for line in rest):
            return {"resolved": resolved, "is_block": False, "mounts": []}
        mounts = []
        for device in parse_lsblk("\n".join(rest)):
            for part in _walk(device):
                # "[SWAP]" is lsblk's MOUNTPOINT for active swap, not a mount (SwapOnDisk reports swap).
                if part["mountpoint"] and part["mountpoint"] != "[SWAP]":
                    mounts.append({"device": part["path"], "mountpoint": part["mountpoint"]})
        return {"resolved": resolved, "is_block": True, "mounts": mounts}


class SwapOnDisk(KeystoneFact):
    """Active swap areas (``/proc/swaps``), and those on the target disk or its partitions.

    Arguments:
        path: the target disk (host data ``disk``)

    Example: ``{"resolved": "/dev/vda", "swaps": [{"device": "/dev/vda3", "type": "partition", "size": 4194300,
    "used": 0}], "on_disk": ["/dev/vda3"]}``
    (sizes in KiB, as the kernel prints them)
    """

    def command(self, path):
        return (_RESOLVE.format(q=shell_quote(path)).replace("exit 0", "r=")
                + '[ -z "$r" ] || lsblk -ln -o PATH "$r" 2>/dev/null | sed "s/^/dev /"; echo --swaps; cat /proc/swaps')

    def process(self, output):
        resolved, rest = _resolved(output)
        if "--swaps" not in rest:
            raise UnparseableOutput("no --swaps section")
        cut = rest.index("--swaps")
        devices = {line[4:].strip() for line in rest[:cut] if line.startswith("dev ")}
        swaps = []
        for line in rest[cut + 1:]:
            parts = line.split()
            if not parts or parts[0] == "Filename":
                continue
            if len(parts) < 5:
                raise UnparseableOutput(f"/proc/swaps: unexpected line {line!r}")
            swaps.append({"device": parts[0].replace("\\040", " "), "type": parts[1],
                          "size": _num(parts[2], "swap size"), "used": _num(parts[3], "swap used")})
        return {"resolved": resolved, "swaps": swaps,
                "on_disk": [s["device"] for s in swaps if s["device"] in devices]}


class Signatures(KeystoneFact):
    """Leftover partition-table and filesystem signatures on the target disk and its partitions
    (``wipefs -n -J``: -n never writes). An empty list means a clean disk.

    Arguments:
        path: the target disk (host data ``disk``)

    Example: ``{"resolved": "/dev/vda", "pttype": "gpt", "signatures": [{"device": "/dev/vda", "type": "gpt",
    "offset": "0x200", "label": null}], "types": ["gpt", "zfs_member"]}``
    """

    requires = "wipefs"

    def command(self, path):
        return (_RESOLVE.format(q=shell_quote(path))
                + 'echo "pttype $(lsblk -dn -o PTTYPE "$r" 2>/dev/null)"; '
                + 'for d in $(lsblk -ln -o PATH "$r"); do echo "--dev $d"; wipefs -n -J "$d" || echo "--failed $d"; done')

    def process(self, output):
        resolved, rest = _resolved(output)
        pttype, device, chunk, sigs, failed = None, None, [], [], []

        def flush():
            text = "\n".join(chunk).strip()
            if device is None or not text:
                return
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise UnparseableOutput(f"wipefs -J printed invalid JSON for {device}: {exc}") from None
            entries = data.get("signatures") if isinstance(data, dict) else None
            if not isinstance(entries, list):
                raise UnparseableOutput(f"wipefs -J for {device} has no 'signatures' list")
            for e in entries:
                if not isinstance(e, dict) or not isinstance(e.get("type"), str):
                    raise UnparseableOutput(f"wipefs: signature without a type: {e!r}")
                sigs.append({"device": device, "type": e["type"], "offset": _text(e.get("offset")),
                             "label": _text(e.get("label")), "uuid": _text(e.get("uuid"))})

        for line in rest:
            if line.startswith("pttype"):
                pttype = line[len("pttype"):].strip() or None
            elif line.startswith("--dev "):
                flush()
                device, chunk = line[6:].strip(), []
            elif line.startswith("--failed "):
                failed.append(line[9:].strip())
            else:
                chunk.append(line)
        flush()
        return {"resolved": resolved, "pttype": pttype, "signatures": sigs,
                "types": sorted({s["type"] for s in sigs if s["type"]}), "unreadable": failed}


class DisksPresent(KeystoneFact):
    """Every disk of a multi-disk layout (host data ``disks``: Keystone v0.2+
    ``keystone.os.storage.devices``, ESP on the first, mirror/stripe/raidz over all) is present as a
    block device, resolved through ``/dev/disk/by-id`` links.

    Arguments:
        paths: the device paths (host data ``disks``)

    Example: ``{"disks": [{"path": "/dev/disk/by-id/a", "resolved": "/dev/sda", "present": true}],
    "absent": [], "count": 1}``
    """

    def command(self, paths: list):
        if not isinstance(paths, (list, tuple)):
            raise ValueError("paths must be a list of device paths")
        parts = []
        for path in paths:
            q = shell_quote(path)
            parts.append(f"printf '%s\\n' {shell_quote('want ' + str(path))}; "
                         f"if [ -b {q} ]; then echo \"present $(readlink -f {q})\"; else echo absent; fi")
        return "; ".join(parts) or "true"

    def process(self, output):
        disks, current = [], None
        for line in output:
            tag, _, rest = line.partition(" ")
            if tag == "want":
                current = {"path": rest, "resolved": None, "present": False}
                disks.append(current)
            elif tag in ("present", "absent") and current is not None:
                current.update(present=tag == "present", resolved=rest.strip() or None)
            elif line.strip():
                raise UnparseableOutput(f"disk presence probe: unexpected line {line[:120]!r}")
        return {"disks": disks, "absent": [d["path"] for d in disks if not d["present"]], "count": len(disks)}


class SwapHolders(KeystoneFact):
    """Active swap areas followed down their device stack (``/sys/class/block/NAME/slaves``) to
    what they sit on: a swap on a zvol of ``pool`` -- directly (``/dev/zd0``) or through dm-crypt
    (``/dev/dm-1`` over ``zd0``) -- holds the pool open and ``zpool export`` fails "pool is busy"
    (nixos-anywhere #420). zvols are matched through their ``/dev/zvol/POOL/...`` links; leaves that
    are partitions are mapped to their disk, and the pool's own disks are read from
    ``zpool status -P -L`` (when the pool is imported) for ``on_pool_disks``.

    Arguments:
        pool: pool name (host data ``pool``)

    Example: ``{"swaps": [{"device": "/dev/dm-1", "chain": ["dm-1", "zd0"], "zvols": ["rpool/swap"],
    "disks": []}], "blocking": ["/dev/dm-1"], "on_pool_disks": [], "pool_disks": ["vda"]}``
    """

    def command(self, pool):
        q = shell_quote(pool)
        return ("kc_walk() { echo \"chain $1 $2\"; "
                "kc_p=$(readlink -f /sys/class/block/$2/..); [ -e \"$kc_p/partition\" ] || "
                "{ [ -e /sys/class/block/$2/partition ] && echo \"disk $1 ${kc_p##*/}\"; }; "
                "[ -e /sys/class/block/$2/partition ] || { [ -d /sys/class/block/$2/slaves ] && "
                "[ -z \"$(ls /sys/class/block/$2/slaves 2>/dev/null)\" ] && echo \"disk $1 $2\"; }; "
                "for kc_s in /sys/class/block/$2/slaves/*; do [ -e \"$kc_s\" ] && kc_walk \"$1\" \"${kc_s##*/}\"; done; }; "
                "tail -n +2 /proc/swaps | while read -r kc_d kc_t kc_rest; do echo \"swap $kc_d $kc_t\"; "
                "[ \"$kc_t\" = partition ] || continue; kc_r=$(readlink -f \"$kc_d\"); kc_walk \"$kc_d\" \"${kc_r##*/}\"; done; "
                f"find /dev/zvol/{q} -type l 2>/dev/null | while IFS= read -r kc_l; do "
                "kc_r=$(readlink -f \"$kc_l\"); echo \"zvol ${kc_r##*/} ${kc_l#/dev/zvol/}\"; done; "
                f"zpool status -P -L {q} 2>/dev/null | awk '$1 ~ /^\\/dev\\// {{print $1}}' | while read -r kc_v; do "
                "kc_r=$(readlink -f \"$kc_v\"); kc_n=${kc_r##*/}; "
                "if [ -e /sys/class/block/$kc_n/partition ]; then kc_p=$(readlink -f /sys/class/block/$kc_n/..); "
                "kc_n=${kc_p##*/}; fi; echo \"pooldisk $kc_n\"; done; exit 0")

    def process(self, output):
        swaps: dict[str, dict] = {}
        zvols: dict[str, str] = {}
        pool_disks: list[str] = []
        for line in output:
            parts = line.split(" ", 2)
            tag = parts[0]
            if tag == "swap" and len(parts) == 3:
                swaps[parts[1]] = {"device": parts[1].replace("\\040", " "), "type": parts[2],
                                   "chain": [], "zvols": [], "disks": []}
            elif tag in ("chain", "disk") and len(parts) == 3 and parts[1] in swaps:
                target = swaps[parts[1]]["chain" if tag == "chain" else "disks"]
                if parts[2] not in target:
                    target.append(parts[2])
            elif tag == "zvol" and len(parts) == 3:
                zvols[parts[1]] = parts[2]
            elif tag == "pooldisk" and len(parts) == 2:
                if parts[1] not in pool_disks:
                    pool_disks.append(parts[1])
            elif line.strip():
                raise UnparseableOutput(f"swap holders probe: unexpected line {line[:120]!r}")
        for swap in swaps.values():
            swap["zvols"] = [zvols[n] for n in swap["chain"] if n in zvols]
            swap["disks"] = [d for d in swap["disks"] if d not in zvols]  # a zvol leaf is not a disk
        listed = list(swaps.values())
        return {"swaps": listed,
                "blocking": [s["device"] for s in listed if s["zvols"]],
                "on_pool_disks": [s["device"] for s in listed if set(s["disks"]) & set(pool_disks)],
                "pool_disks": pool_disks}
