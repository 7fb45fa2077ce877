"""ZFS: kernel module, pools, datasets, keys, ARC."""

from __future__ import annotations

import os
import re

from ..errors import ProbeFailed, UnparseableOutput
from .base import KeystoneFact, labelled_lines, parse_int, shell_quote


class ModuleAvailable(KeystoneFact):
    """Whether the running kernel has a zfs module to load (``modinfo``), even when none is loaded.

    Needs modinfo: without it availability cannot be known, so the check errors rather than
    guessing (a loaded module counts as available).

    Example: ``{"kernel": "6.1.0-56-amd64", "available": true, "version": "2.1.11-1+deb12u1"}``
    """

    requires = "modinfo"

    def command(self):
        return (
            "echo \"kernel $(uname -r)\"; "
            "if v=$(modinfo -F version zfs 2>/dev/null); then echo \"available ${v:-unknown}\"; "
            "elif [ -r /sys/module/zfs/version ]; then echo \"available $(cat /sys/module/zfs/version)\"; "
            "else echo 'available no'; fi"
        )

    def process(self, output):
        fields = labelled_lines(output, ("kernel", "available"))
        version = fields["available"]
        return {"kernel": fields["kernel"] or None, "available": version != "no",
                "version": None if version in ("no", "unknown") else version}


class ModuleStatus(KeystoneFact):
    """Whether the zfs kernel module is loaded, and whether the running kernel has one to load.

    Example: ``{"loaded": true, "version": "2.1.11-1", "kernel": "6.1.0-21-amd64", "available": true, "available_version": "2.1.11-1"}``
    """

    def command(self):
        return (
            # read, a shell builtin, instead of cat: one process less
            "if [ -r /sys/module/zfs/version ]; then kc_v=; IFS= read -r kc_v </sys/module/zfs/version; "
            "echo \"loaded $kc_v\"; "
            "elif grep -q '^zfs ' /proc/modules 2>/dev/null; then echo 'loaded unknown'; else echo 'loaded no'; fi; "
            "echo \"kernel $(uname -r)\"; "
            "if command -v modinfo >/dev/null 2>&1; then "
            "v=$(modinfo -F version zfs 2>/dev/null) && echo \"available ${v:-unknown}\" || echo 'available no'; "
            "else echo 'available unknown'; fi"
        )

    def process(self, output):
        fields = labelled_lines(output)
        loaded = fields.get("loaded", "no")
        available = fields.get("available", "unknown")
        return {
            "loaded": loaded != "no",
            "version": None if loaded in ("no", "unknown") else loaded,
            "kernel": fields.get("kernel") or None,
            # Loaded means available; otherwise only modinfo can tell (None: cannot tell).
            "available": True if loaded != "no" else (None if available == "unknown" else available != "no"),
            "available_version": None if available in ("no", "unknown") else available,
        }


# -- helpers shared by the pool facts ------------------------------------------------------------


_NO_POOLS = ("no pools available", "no pools available to import")


def _fail(result) -> None:
    from ..errors import ProbeFailed

    raise ProbeFailed(f"command exited {result.exit_code}: {result.stderr_text() or 'no error output'}")


def _scan_state(text: str) -> str:
    """Classify a ``scan:`` line (ZFS 2.1 and 2.2/2.3 wordings)."""
    t = text.lower()
    if not t or t.startswith("none requested"):
        return "none"
    for kind in ("scrub", "resilver"):
        if t.startswith(kind):
            if "in progress" in t:
                return f"{kind}-in-progress"
            if "paused" in t:
                return f"{kind}-paused"
            if "canceled" in t or "cancelled" in t:
                return f"{kind}-canceled"
            if "repaired" in t or "resilvered" in t:
                return f"{kind}-finished"
    if t.startswith("error scrubbing") or t.startswith("errorscrub"):
        return "error-scrub"
    return "other"


def _blocks(lines: list[str]) -> dict[str, list[str]]:
    """``key: value`` blocks of zpool status / import output; continuation lines are indented."""
    blocks: dict[str, list[str]] = {}
    current = None
    for line in lines:
        m = re.match(r"^\s*([a-z]+):\s?(.*)$", line)
        if m and not line.startswith("\t") and (len(line) - len(line.lstrip(" "))) <= 6:
            current = m.group(1)
            blocks.setdefault(current, [])
            if m.group(2).strip():
                blocks[current].append(m.group(2).strip())
            continue
        if current is not None:
            blocks[current].append(line)
    return blocks


_VDEV = re.compile(r"^(\t| {2,})(\s*)(\S+)\s+(ONLINE|DEGRADED|FAULTED|OFFLINE|UNAVAIL|REMOVED|AVAIL|INUSE|SPLIT)\b"
                   r"(?:\s+(\S+)\s+(\S+)\s+(\S+))?\s*(.*)$")


def _vdevs(config: list[str]) -> list[dict]:
    vdevs = []
    for line in config:
        if not line.strip() or line.strip().startswith("NAME "):
            continue
        m = _VDEV.match(line)
        if not m:
            continue
        vdevs.append({
            "name": m.group(3), "state": m.group(4), "depth": len(m.group(2)) // 2,
            "read": m.group(5), "write": m.group(6), "cksum": m.group(7),
            "note": m.group(8).strip() or None,
        })
    return vdevs


class PoolList(KeystoneFact):
    """Imported pools (``zpool list -H -p -o name,size,allocated,free,health,altroot``) and whether
    ``pool`` is one of them.

    Arguments:
        pool: pool name (host data ``pool``)

    Example: ``{"imported": true, "pool": {"name": "rpool", "size": 21474836480, "allocated": 3e9,
    "free": 18e9, "health": "ONLINE", "altroot": null}, "pools": [...]}``
    """

    requires = "zpool"

    def command(self, pool):
        return f"echo {shell_quote('want ' + str(pool))}; zpool list -H -p -o name,size,allocated,free,health,altroot"

    def process(self, output):
        if not output or not output[0].startswith("want "):
            raise UnparseableOutput("expected a 'want POOL' line first")
        pool = output[0][5:]
        pools = []
        for line in output[1:]:
            if not line.strip() or line.strip() in _NO_POOLS:
                continue
            parts = line.split("\t")
            if len(parts) != 6:
                raise UnparseableOutput(f"zpool list: expected 6 tab-separated fields, got {line!r}")
            pools.append({
                "name": parts[0], "size": parse_int(parts[1], "pool size"),
                "allocated": parse_int(parts[2], "pool allocated"), "free": parse_int(parts[3], "pool free"),
                "health": parts[4], "altroot": None if parts[5] in ("-", "") else parts[5],
            })
        found = next((p for p in pools if p["name"] == pool), None)
        return {"imported": found is not None, "pool": found, "pools": pools}


class ImportedPools(PoolList):
    """The pools imported right now, for an operation deciding what to do: :class:`PoolList`, except
    that ``zpool list`` exiting 1 because the zfs module is not loaded is an answer (no pool is
    imported), not a failure. Checks use :class:`PoolList`, where that exit is reported.

    Arguments:
        pool: pool name (``""``: none in particular)

    Example: ``{"imported": false, "pool": null, "pools": []}``
    """

    ok_exit_codes = frozenset({0, 1})


class PoolStatus(KeystoneFact):
    """``zpool status -v POOL``: state, scan (scrub/resilver, ZFS 2.1 and 2.2+ wordings), vdevs, errors.

    A pool that is not imported ("cannot open 'rpool': no such pool", exit 1) is an answer:
    ``{"found": false, ...}``.

    Arguments:
        pool: pool name (host data ``pool``)

    Example: ``{"found": true, "pool": "rpool", "state": "DEGRADED", "status": "One or more devices ...",
    "scan": {"state": "scrub-in-progress", "text": "scrub in progress since ...", "percent": 25.0},
    "scrub_running": true, "vdevs": [...], "unhealthy_vdevs": [...], "errors": "No known data errors",
    "error_files": []}``
    """

    requires = "zpool"
    ok_exit_codes = frozenset({0, 1})

    def command(self, pool):
        return f"zpool status -v {shell_quote(pool)}"

    def parse(self, result):
        self.raise_for_exit(result)
        text = " ".join(result.stderr + result.stdout)
        if result.exit_code == 1 or "no such pool" in text:
            if "no such pool" in text:
                return {"found": False, "pool": None, "state": None, "status": None, "scan": None,
                        "scrub_running": False, "vdevs": [], "unhealthy_vdevs": [], "errors": None, "error_files": []}
            _fail(result)
        return self.process(result.stdout)

    def process(self, output):
        blocks = _blocks(output)
        if "pool" not in blocks or "state" not in blocks or not blocks["pool"] or not blocks["state"]:
            raise UnparseableOutput("zpool status: no 'pool:' and 'state:' lines")
        scan_lines = [l.strip() for l in blocks.get("scan", []) if l.strip()]
        scan_text = " ".join(scan_lines)
        pct = re.search(r"([0-9.]+)% done", scan_text)
        state = _scan_state(scan_text)
        vdevs = _vdevs(blocks.get("config", []))
        errors = blocks.get("errors", [])
        return {
            "found": True,
            "pool": blocks["pool"][0].strip(),
            "state": blocks["state"][0].strip(),
            "status": " ".join(l.strip() for l in blocks.get("status", [])) or None,
            "scan": {"state": state, "text": scan_text or None, "percent": float(pct.group(1)) if pct else None},
            "scrub_running": state == "scrub-in-progress",
            "vdevs": vdevs,
            "unhealthy_vdevs": [v for v in vdevs if v["state"] != "ONLINE" or (v["cksum"] not in (None, "0"))
                                or v["read"] not in (None, "0") or v["write"] not in (None, "0")],
            "errors": errors[0].strip() if errors else None,
            "error_files": [l.strip() for l in errors[1:] if l.strip()],
        }


class ImportablePools(KeystoneFact):
    """Pools ``zpool import`` (no arguments) lists as importable, and which need ``-f``
    ("last accessed by another system"). "no pools available to import" (printed on
    stderr, which the command folds into stdout, with exit 1) is an empty answer.

    Example: ``{"pools": [{"name": "rpool", "id": "1234", "state": "ONLINE", "status": "The pool was
    last accessed by another system.", "needs_force": true, "vdevs": [...]}], "names": ["rpool"],
    "needing_force": ["rpool"]}``
    """

    requires = "zpool"
    ok_exit_codes = frozenset({0, 1})

    def command(self):
        return "zpool import 2>&1"

    def parse(self, result):
        self.raise_for_exit(result)
        lines = result.stdout
        if result.exit_code == 1 and not any(l.strip() == "no pools available to import" or
                                              re.match(r"^\s*pool:\s", l) for l in lines):
            from ..errors import ProbeFailed

            raise ProbeFailed("zpool import exited 1: " + " ".join(l.strip() for l in lines if l.strip())[:300])
        return self.process(lines)

    def process(self, output):
        text = [l for l in output]
        if any(l.strip() == "no pools available to import" for l in text) and not any(
                l.strip().startswith("pool:") for l in text):
            return {"pools": [], "names": [], "needing_force": []}
        chunks: list[list[str]] = []
        for line in text:
            if re.match(r"^\s*pool:\s", line):
                chunks.append([])
            if chunks:
                chunks[-1].append(line)
        if not chunks:
            if not any(l.strip() for l in text):
                return {"pools": [], "names": [], "needing_force": []}
            raise UnparseableOutput(f"zpool import: no 'pool:' entries in {' '.join(text)[:200]!r}")
        pools = []
        for chunk in chunks:
            b = _blocks(chunk)
            if not b.get("pool"):
                raise UnparseableOutput("zpool import: entry without a pool name")
            status = " ".join(l.strip() for l in b.get("status", [])) or None
            action = " ".join(l.strip() for l in b.get("action", [])) or None
            needs_force = bool((status and "last accessed by another system" in status)
                               or (action and "'-f' flag" in action))
            pools.append({"name": b["pool"][0].strip(), "id": (b.get("id") or [None])[0],
                          "state": ((b.get("state") or [""])[0] or "").strip() or None,
                          "status": status, "action": action, "needs_force": needs_force,
                          "vdevs": _vdevs(b.get("config", []))})
        return {"pools": pools, "names": [p["name"] for p in pools],
                "needing_force": [p["name"] for p in pools if p["needs_force"]]}


class ImportedPoolsOnDisk(KeystoneFact):
    """Imported pools with a vdev on the target disk or one of its partitions
    (``zpool status -P -L``: full, symlink-resolved vdev paths).

    Arguments:
        path: the target disk (host data ``disk``; by-id paths are resolved)

    Example: ``{"resolved": "/dev/vda", "pools": ["rpool"], "vdevs": ["/dev/vda2"]}``
    """

    requires = "zpool"

    def command(self, path):
        q = shell_quote(path)
        return (f"echo \"resolved $(readlink -f {q})\"; "
                f"if [ -e {q} ]; then lsblk -ln -o PATH \"$(readlink -f {q})\" | sed 's/^/dev /'; fi; "
                "echo '--status'; zpool status -P -L 2>&1 | grep -v '^no pools available' ; exit 0")

    def process(self, output):
        if not output or not output[0].startswith("resolved"):
            raise UnparseableOutput("expected a 'resolved' line first")
        resolved = output[0][len("resolved"):].strip() or None
        devices, status, in_status = set(), [], False
        for line in output[1:]:
            if line == "--status":
                in_status = True
            elif in_status:
                status.append(line)
            elif line.startswith("dev "):
                devices.add(line[4:].strip())
        pools, vdevs, current = [], [], None
        for line in status:
            m = re.match(r"^\s*pool:\s*(\S+)", line)
            if m:
                current = m.group(1)
                continue
            if line.strip().startswith("/dev/"):
                dev = line.split()[0]
                if dev in devices:
                    vdevs.append(dev)
                    if current and current not in pools:
                        pools.append(current)
        return {"resolved": resolved, "pools": pools, "vdevs": vdevs}


class PoolLabels(KeystoneFact):
    """The ZFS labels on this host's block devices (``zdb -l`` on every device ``lsblk`` lists),
    imported pools or not: a pool's ``state`` (0 active: imported, or never exported; 1 exported)
    and the ``hostid``/``hostname`` of the system that last had it. ``zpool import`` cannot show
    this: it lists a pool left active by a system with this host's hostid (the same installer ISO,
    rebooted without ``zpool export``) like a cleanly exported one, while the installed system's
    boot import (no ``-f``, its own hostid) refuses it.

    ``active``: pools whose label says active and that this host has not imported: the last system
    to use them never exported them.

    Example: ``{"labels": [{"device": "/dev/vda2", "pool": "rpool", "state": 0, "hostid":
    "4b490001", "hostname": "nixos"}], "imported": [], "active": ["rpool"], "exported": []}``
    """

    requires = "zdb"
    # One zdb start per block device (libzpool is large): on a loaded machine, e.g. a TCG guest
    # beside two others, the 20 s default ran out (measured 2026-12-02); a hung device still ends it.
    timeout = 60

    def command(self):
        return ("lsblk -ln -o PATH | while IFS= read -r kc_d; do "
                "kc_l=$(zdb -l \"$kc_d\" 2>/dev/null | awk '$1==\"name:\"||$1==\"state:\"||$1==\"hostid:\"||"
                "$1==\"hostname:\" {print \"label\", $1, $2}'); "
                "[ -n \"$kc_l\" ] && printf 'dev %s\\n%s\\n' \"$kc_d\" \"$kc_l\"; done; "
                "echo '--imported'; zpool list -H -o name 2>/dev/null; exit 0")

    def process(self, output):
        labels: list[dict] = []
        imported: list[str] = []
        in_imported = False
        for line in output:
            if line == "--imported":
                in_imported = True
            elif in_imported:
                if line.strip():
                    imported.append(line.strip())
            elif line.startswith("dev "):
                labels.append({"device": line[4:].strip()})
            elif line.startswith("label ") and labels:
                key, _, value = line[6:].partition(" ")
                labels[-1].setdefault(key.rstrip(":"), value.strip().strip("'"))  # the first label wins
            elif line.strip():
                raise UnparseableOutput(f"pool labels probe: unexpected line {line[:120]!r}")
        if not in_imported:
            raise UnparseableOutput("pool labels probe: no '--imported' marker (output cut short?)")
        out = []
        for lab in labels:
            if "name" not in lab:
                continue  # a label without a pool name: an L2ARC/spare device
            state = parse_int(lab["state"], f"label state on {lab['device']}") if "state" in lab else None
            where = f"label hostid on {lab['device']}"
            hostid = f"{parse_int(lab['hostid'], where):08x}" if "hostid" in lab else None
            out.append({"device": lab["device"], "pool": lab["name"], "state": state, "hostid": hostid,
                        "hostname": lab.get("hostname")})
        active = sorted({lab["pool"] for lab in out if lab["state"] == 0 and lab["pool"] not in imported})
        exported = sorted({lab["pool"] for lab in out if lab["state"] == 1})
        return {"labels": out, "imported": imported, "active": active, "exported": exported}


class DatasetProperties(KeystoneFact):
    """Encryption, key and mount state of a dataset and its children
    (``zfs get -H -p -o name,property,value encryption,keystatus,keylocation,keyformat,encryptionroot,mounted,canmount,mountpoint -r``).
    Reads properties only, never key material. A missing dataset is an answer (``exists: false``).

    Arguments:
        dataset: e.g. ``rpool/crypt`` (host data ``crypt_dataset``)

    Example: ``{"exists": true, "encryption": "aes-256-gcm", "keystatus": "available",
    "keylocation": "file:///etc/credstore/zfs-sysroot.mount", "keyformat": "raw",
    "datasets": [...], "locked": [], "unmounted": []}``
    """

    requires = "zfs"
    ok_exit_codes = frozenset({0, 1})
    PROPS = "encryption,keystatus,keylocation,keyformat,encryptionroot,mounted,canmount,mountpoint"

    def command(self, dataset):
        return f"zfs get -H -p -o name,property,value {self.PROPS} -r {shell_quote(dataset)}"

    def parse(self, result):
        self.raise_for_exit(result)
        text = " ".join(result.stderr)
        if result.exit_code == 1 and "does not exist" in text:
            return {"exists": False, "encryption": None, "keystatus": None, "keylocation": None,
                    "keyformat": None, "datasets": [], "locked": [], "unmounted": []}
        if result.exit_code != 0:
            _fail(result)
        return self.process(result.stdout)

    def process(self, output):
        by_name: dict[str, dict] = {}
        order: list[str] = []
        for line in output:
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise UnparseableOutput(f"zfs get: expected name<TAB>property<TAB>value, got {line!r}")
            if parts[0] not in by_name:
                by_name[parts[0]] = {"name": parts[0]}
                order.append(parts[0])
            by_name[parts[0]][parts[1]] = None if parts[2] == "-" else parts[2]
        if not order:
            raise UnparseableOutput("zfs get printed no properties")
        datasets = [by_name[n] for n in order]
        top = datasets[0]
        locked = [d["name"] for d in datasets
                  if d.get("encryption") not in (None, "off") and d.get("keystatus") not in ("available", None)]
        unmounted = [d["name"] for d in datasets
                     if d.get("mounted") == "no" and d.get("canmount") not in ("off", None)
                     and d.get("mountpoint") not in ("none", None)]
        return {"exists": True, "encryption": top.get("encryption"), "keystatus": top.get("keystatus"),
                "keylocation": top.get("keylocation"), "keyformat": top.get("keyformat"),
                "datasets": datasets, "locked": locked, "unmounted": unmounted}


class SnapshotHolds(KeystoneFact):
    """User holds on the pool's snapshots (``zfs holds -H`` over ``zfs list -t snapshot -r``): held
    snapshots keep a pool busy on export. A pool that is not imported is an answer.

    Arguments:
        pool: pool name (host data ``pool``)

    Example: ``{"imported": true, "snapshots": 12, "holds": [{"snapshot": "rpool/crypt/root@x", "tag": "keep",
    "since": "Sun Nov 22 03:00 2026"}]}``
    """

    requires = "zfs"
    ok_exit_codes = frozenset({0, 1})

    def command(self, pool):
        q = shell_quote(pool)
        return (f"s=$(zfs list -H -t snapshot -o name -r {q}) || exit 1; "
                "echo \"snapshots $(printf '%s' \"$s\" | grep -c .)\"; "
                "[ -z \"$s\" ] || printf '%s\\n' \"$s\" | xargs zfs holds -H")

    def parse(self, result):
        self.raise_for_exit(result)
        text = " ".join(result.stderr)
        if result.exit_code == 1 and ("does not exist" in text or "no such pool" in text):
            return {"imported": False, "snapshots": 0, "holds": []}
        if result.exit_code != 0:
            _fail(result)
        return self.process(result.stdout)

    def process(self, output):
        if not output or not output[0].startswith("snapshots "):
            raise UnparseableOutput("expected a 'snapshots N' line first")
        count = parse_int(output[0].split(" ", 1)[1], "snapshot count")
        holds = []
        for line in output[1:]:
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise UnparseableOutput(f"zfs holds: expected 3 tab-separated fields, got {line!r}")
            holds.append({"snapshot": parts[0], "tag": parts[1], "since": parts[2]})
        return {"imported": True, "snapshots": count, "holds": holds}


class ArcSizing(KeystoneFact):
    """ZFS ARC limits (``/proc/spl/kstat/zfs/arcstats``: c_max, c_min, c, size) against RAM
    (``MemTotal`` in /proc/meminfo), in bytes.

    Also reads the module parameter ``zfs_arc_max`` (``arc_max_param``; null when not readable).

    Example: ``{"c_max": 8e9, "c_min": 5e8, "c": 4e9, "size": 3e9, "mem_total": 16e9, "arc_max_param": 0, "c_max_within_ram": true}``
    """

    def command(self):
        return ("if [ -r /proc/spl/kstat/zfs/arcstats ]; then "
                "awk '$1==\"c_max\"||$1==\"c_min\"||$1==\"c\"||$1==\"size\" {print $1, $3}' /proc/spl/kstat/zfs/arcstats; "
                "else echo 'arcstats missing'; fi; "
                # shell builtins instead of grep and cat (one process each); MemTotal is meminfo's first line
                "while IFS= read -r kc_l || [ -n \"$kc_l\" ]; do case $kc_l in MemTotal:*) printf '%s\\n' \"$kc_l\"; break;; esac; "
                "done </proc/meminfo; if [ -r /sys/module/zfs/parameters/zfs_arc_max ]; then "
                "kc_v=; IFS= read -r kc_v </sys/module/zfs/parameters/zfs_arc_max; echo \"param $kc_v\"; fi")

    def process(self, output):
        values: dict[str, int] = {}
        missing = False
        for line in output:
            parts = line.split()
            if not parts:
                continue
            if line.strip() == "arcstats missing":
                missing = True
            elif parts[0] == "param":
                values["arc_max_param"] = parse_int(parts[1] if len(parts) > 1 else "", "zfs_arc_max")
            elif parts[0] == "MemTotal:":
                if len(parts) < 2:
                    raise UnparseableOutput(f"meminfo: bad MemTotal line {line!r}")
                values["mem_total"] = parse_int(parts[1], "MemTotal") * 1024
            elif len(parts) == 2:
                values[parts[0]] = parse_int(parts[1], f"arcstats {parts[0]}")
        if "mem_total" not in values:
            raise UnparseableOutput("no MemTotal line in /proc/meminfo")
        if missing:
            raise ProbeFailed("/proc/spl/kstat/zfs/arcstats missing (zfs module not loaded)")
        if "c_max" not in values:
            raise UnparseableOutput("arcstats has no c_max")
        # ZFS clamps c_max to physical memory, so arcstats alone hides a bad setting: the module
        # parameter zfs_arc_max (what the guide's kernel parameter sets; 0 = ZFS's default) counts too.
        param = values.get("arc_max_param")
        return {"c_max": values["c_max"], "c_min": values.get("c_min"), "c": values.get("c"),
                "size": values.get("size"), "mem_total": values["mem_total"], "arc_max_param": param,
                "c_max_within_ram": values["c_max"] <= values["mem_total"]
                and (not param or param <= values["mem_total"])}




def _hostid_hex(text: str, what: str) -> str | None:
    """``od -An -tx4 -N4`` of a hostid file (native byte order: what gethostid() returns), as 8 hex digits."""
    value = text.strip().lower()
    if not value:
        return None
    if not re.fullmatch(r"[0-9a-f]{1,8}", value):
        raise UnparseableOutput(f"{what}: expected a 32-bit hex hostid, got {text!r}")
    return value.zfill(8)


class HostIds(KeystoneFact):
    """Will the next boot import the pool without ``-f``: the hostid the next boot uses against the
    hostid the pool last recorded.

    - ``running``: ``/etc/hostid`` now (4 bytes, native byte order, read with ``od -An -tx4``: the
      value ``hostid`` prints);
    - ``next_boot``: ``PROFILE/etc/hostid`` of the generation the profile points at: NixOS writes
      ``networking.hostId`` there (``environment.etc.hostid``) and into that generation's initrd;
    - ``pool``: the ``hostid:`` of the pool's label (``zdb -l`` on its first vdev from
      ``zpool status -P -L``; decimal, as OpenZFS ``cmd/zdb`` prints it), with its ``state:``
      (0 active, 1 exported). The Keystone boot import has no ``-f``
      (``boot.zfs.forceImportRoot = false``): an active pool whose hostid differs from the initrd's
      stops the next boot ("pool was previously in use from another system").

    ``matches`` is true when the pool records no hostid, is exported, or its hostid equals
    ``next_boot`` (``running`` when the profile has no hostid file). A pool that is not imported is
    an error (its label is not read from unimported disks: that is what ``pool-imported`` reports).

    Arguments:
        pool: pool name (host data ``pool``)
        profile: system profile (host data ``system_profile``)

    Example: ``{"running": "4b440001", "next_boot": "4b440001", "pool": "4b440001", "pool_state": 0,
    "vdev": "/dev/vda2", "matches": true}``
    """

    requires = "zdb"

    def command(self, pool, profile):
        q, p = shell_quote(pool), shell_quote(str(profile).rstrip("/") + "/etc/hostid")
        return ("echo \"running $(od -An -tx4 -N4 /etc/hostid 2>/dev/null | tr -d ' ')\"; "
                f"echo \"next $(od -An -tx4 -N4 {p} 2>/dev/null | tr -d ' ')\"; "
                f"kc_v=$(zpool status -P -L {q} 2>/dev/null | awk '$1 ~ /^\\/dev\\// {{print $1; exit}}'); "
                "echo \"vdev $kc_v\"; [ -n \"$kc_v\" ] || exit 0; "
                "zdb -l \"$kc_v\" | awk '$1==\"hostid:\"||$1==\"state:\"||$1==\"name:\" {print \"label\", $1, $2}'")

    def process(self, output):
        fields: dict[str, str] = {}
        label: dict[str, str] = {}
        for line in output:
            tag, _, rest = line.partition(" ")
            if tag in ("running", "next", "vdev"):
                fields[tag] = rest.strip()
            elif tag == "label":
                key, _, value = rest.partition(" ")
                label.setdefault(key.rstrip(":"), value.strip().strip("'"))  # the first label wins
        if not all(k in fields for k in ("running", "next", "vdev")):
            raise UnparseableOutput(f"hostid probe: expected running, next and vdev lines, got {output[:4]!r}")
        running = _hostid_hex(fields["running"], "/etc/hostid")
        next_boot = _hostid_hex(fields["next"], "the profile's etc/hostid")
        vdev = fields["vdev"] or None
        pool_hostid = state = None
        if "hostid" in label:
            pool_hostid = f"{parse_int(label['hostid'], 'label hostid'):08x}"
        if "state" in label:
            state = parse_int(label["state"], "label state")
        if not vdev:
            raise ProbeFailed("the pool is not imported (zpool status -P -L lists no vdev): its label "
                              "cannot be read without importing it")
        if not label:
            raise UnparseableOutput(f"zdb -l {vdev} printed no label (name/state/hostid)")
        wanted = next_boot or running
        matches = pool_hostid is None or state == 1 or pool_hostid == wanted
        return {"running": running, "next_boot": next_boot, "pool": pool_hostid, "pool_state": state,
                "vdev": vdev, "matches": matches}


class KeySource(KeystoneFact):
    """Where the next boot must find the encryption root's key (``zfs get keylocation,keyformat,
    encryptionroot,encryption``), judged against the credstore the initrd mounts. Reads
    properties only, never the key.

    ``in_credstore``: ``keylocation`` is ``file://`` inside ``credstore_mount`` (Keystone's
    initrd mounts the credstore at ``/etc/credstore`` and loads ``file:///etc/credstore/zfs-sysroot.mount``);
    ``under_tmp``: a ``file:///tmp/...`` location (nixos-anywhere #161: the key file used at install
    time, gone at boot).

    Arguments:
        dataset: the encrypted dataset (host data ``crypt_dataset``)
        credstore_mount: where the initrd mounts the credstore (host data ``credstore_mount``)

    Example: ``{"exists": true, "dataset": "rpool/crypt", "encryption_root": "rpool/crypt",
    "keylocation": "file:///etc/credstore/zfs-sysroot.mount", "keyformat": "raw",
    "in_credstore": true, "under_tmp": false, "credstore_mount": "/etc/credstore"}``
    """

    requires = "zfs"
    ok_exit_codes = frozenset({0, 1})

    def command(self, dataset, credstore_mount):
        return (f"printf '%s\\n' {shell_quote('credstore ' + str(credstore_mount))}; "
                f"zfs get -H -p -o property,value encryption,encryptionroot,keylocation,keyformat {shell_quote(dataset)}")

    def parse(self, result):
        self.raise_for_exit(result)
        if result.exit_code == 1:
            if "does not exist" in " ".join(result.stderr):
                return {"exists": False, "dataset": None, "encryption_root": None, "keylocation": None,
                        "keyformat": None, "in_credstore": False, "under_tmp": False,
                        "credstore_mount": (result.stdout[0][len("credstore "):] if result.stdout else None)}
            _fail(result)
        return self.process(result.stdout)

    def process(self, output):
        if not output or not output[0].startswith("credstore "):
            raise UnparseableOutput("expected a 'credstore PATH' line first")
        mount = output[0][len("credstore "):].rstrip("/")
        props: dict[str, str | None] = {}
        for line in output[1:]:
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise UnparseableOutput(f"zfs get: expected property<TAB>value, got {line!r}")
            props[parts[0]] = None if parts[1] == "-" else parts[1]
        if "keylocation" not in props:
            raise UnparseableOutput("zfs get printed no keylocation")
        location = props.get("keylocation") or ""
        path = location[len("file://"):] if location.startswith("file://") else None
        normal = os.path.normpath(path) if path else None
        return {"exists": True, "encryption": props.get("encryption"),
                "encryption_root": props.get("encryptionroot"), "keylocation": props.get("keylocation"),
                "keyformat": props.get("keyformat"),
                "in_credstore": bool(normal and mount and normal.startswith(mount + "/")),
                "under_tmp": bool(normal and (normal == "/tmp" or normal.startswith("/tmp/"))),
                "credstore_mount": mount}
