"""Whole-system facts: the detected Keystone layout, filesystem space, mounts, memory, load."""

from __future__ import annotations

import re
from typing import Any

from ..errors import ProbeFailed, UnparseableOutput
from .base import KeystoneFact, ProbeOutput, parse_int, shell_quote

_OS_RELEASE_KEYS = ("ID", "VARIANT_ID", "VERSION_ID")


def _pin_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


class Layout(KeystoneFact):
    """Which Keystone layout this host has, from one cheap probe; host data ``layout`` pins keys.

    - ``installer``: ``VARIANT_ID=installer`` in ``/etc/os-release`` (nixpkgs
      ``nixos/modules/profiles/installation-device.nix`` sets ``system.nixos.variant_id``, which the
      Keystone ISO gets through ``installation-cd-minimal.nix``; nixos-anywhere's
      ``src/get-facts.sh`` decides "installer" with the same test).
    - ``storage``: ``zfs`` when ``/`` is a ZFS dataset or ``pool`` is imported
      (``/proc/spl/kstat/zfs/POOL`` exists); ``ext4-luks`` when ``/`` is on, or there is,
      ``/dev/mapper/cryptroot`` (Keystone v0.2+ ``keystone.os.storage.type = "ext4"``: LUKS
      ``cryptroot``, no pool); else null (cannot tell).
    - ``boot_loader``: ``lanzaboote`` when the ESP holds UKIs ``EFI/Linux/nixos-generation-*.efi``
      (lanzaboote writes those and no Type 1 entries), ``systemd-boot`` when it holds
      ``loader/entries/*.conf`` (nixpkgs ``systemd-boot-builder.py``); else null.
    - ``firewall``: only ever pinned here (the firewall facts detect their own backend).

    Arguments:
        boot_mount: ESP mount point (host data ``boot_mount``; ``/mnt/boot`` for an installed
            system seen from the ISO)
        pool: ZFS pool name (host data ``pool``)
        pinned: host data ``layout``; each key set there replaces the detected value

    Example: ``{"installer": false, "storage": "zfs", "boot_loader": "lanzaboote", "firewall": null,
    "os_id": "nixos", "variant_id": null, "root_source": "rpool/crypt/system", "root_fstype": "zfs",
    "loader_entries": 0, "ukis": 3, "pinned": [], "detected": {...}}``
    """

    def command(self, boot_mount, pool, pinned: dict | None = None):
        esp, q_pool = shell_quote(boot_mount), shell_quote(pool)
        pins = "".join(f"printf '%s\\n' {shell_quote(f'pin {key} {_pin_text(value)}')}; "
                       for key, value in sorted((pinned or {}).items()))
        return (pins +
                "awk -F= '$1==\"ID\"||$1==\"VARIANT_ID\"||$1==\"VERSION_ID\" "
                "{v=$2; gsub(/^\"|\"$/, \"\", v); print \"os\", $1, v}' /etc/os-release 2>/dev/null; "
                "echo \"root $(findmnt -n -o SOURCE,FSTYPE / 2>/dev/null || awk '$2==\"/\" {s=$1\" \"$3} END {print s}' /proc/mounts)\"; "
                f"if [ -n {q_pool} ] && [ -d /proc/spl/kstat/zfs/{q_pool} ]; then echo 'pool yes'; else echo 'pool no'; fi; "
                "if [ -e /dev/mapper/cryptroot ]; then echo 'cryptroot yes'; else echo 'cryptroot no'; fi; "
                f"kc_e=0; kc_u=0; if cd {esp} 2>/dev/null; then "
                "for kc_f in loader/entries/*.conf; do [ -e \"$kc_f\" ] && kc_e=$((kc_e + 1)); done; "
                "for kc_f in EFI/Linux/nixos-generation-*.efi; do [ -e \"$kc_f\" ] && kc_u=$((kc_u + 1)); done; fi; "
                "echo \"esp $kc_e $kc_u\"")

    def process(self, output):
        os_release: dict[str, str] = {}
        pins: dict[str, Any] = {}
        fields: dict[str, str] = {}
        for line in output:
            tag, _, rest = line.partition(" ")
            if tag == "os":
                key, _, value = rest.partition(" ")
                os_release[key] = value.strip()
            elif tag == "pin":
                key, _, value = rest.partition(" ")
                pins[key] = {"true": True, "false": False}.get(value, value) if key == "installer" else value
            elif tag in ("root", "pool", "cryptroot", "esp"):
                fields[tag] = rest.strip()
        missing = [t for t in ("root", "pool", "cryptroot", "esp") if t not in fields]
        if missing:
            raise UnparseableOutput(f"layout probe: no {', '.join(missing)} line(s) in {output[:6]!r}")
        root = fields["root"].split()
        root_source = root[0] if root else None
        root_fstype = root[1] if len(root) > 1 else None
        esp = fields["esp"].split()
        if len(esp) != 2:
            raise UnparseableOutput(f"layout probe: expected 'esp ENTRIES UKIS', got {fields['esp']!r}")
        entries, ukis = parse_int(esp[0], "loader entry count"), parse_int(esp[1], "UKI count")
        if root_fstype == "zfs" or fields["pool"] == "yes":
            storage = "zfs"
        elif root_source == "/dev/mapper/cryptroot" or fields["cryptroot"] == "yes":
            storage = "ext4-luks"
        else:
            storage = None
        loader = "lanzaboote" if ukis else ("systemd-boot" if entries else None)
        detected = {"installer": os_release.get("VARIANT_ID") == "installer", "storage": storage,
                    "boot_loader": loader, "firewall": None}
        return {**detected, **pins,
                "os_id": os_release.get("ID") or None, "variant_id": os_release.get("VARIANT_ID") or None,
                "os_version": os_release.get("VERSION_ID") or None,
                "root_source": root_source, "root_fstype": root_fstype,
                "loader_entries": entries, "ukis": ukis,
                "pinned": sorted(pins), "detected": detected}


class RootMount(KeystoneFact):
    """What is mounted at ``/`` (``findmnt -n -o SOURCE,FSTYPE /``, else ``/proc/mounts``).

    Example: ``{"source": "rpool/crypt/system", "fstype": "zfs"}``
    """

    def command(self):
        return ("findmnt -n -o SOURCE,FSTYPE / 2>/dev/null || "
                "awk '$2==\"/\" {s=$1\" \"$3} END {if (s) print s}' /proc/mounts")

    def process(self, output):
        rows = [line.split() for line in output if line.strip()]
        if not rows or len(rows[-1]) != 2:
            raise UnparseableOutput(f"findmnt /: expected 'SOURCE FSTYPE', got {output[:3]!r}")
        return {"source": rows[-1][0], "fstype": rows[-1][1]}


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


class MountsUnder(KeystoneFact):
    """Filesystems mounted at or below ``path`` (``/proc/mounts``), deepest last.

    Arguments:
        path: e.g. ``/mnt`` (where nixos-anywhere mounts the new system)

    Example: ``[{"source": "rpool/crypt/system", "target": "/mnt", "fstype": "zfs"},
    {"source": "/dev/vda1", "target": "/mnt/boot", "fstype": "vfat"}]``
    """

    def command(self, path):
        return f"echo {shell_quote('under ' + str(path))}; cat /proc/mounts"

    def process(self, output):
        if not output or not output[0].startswith("under "):
            raise UnparseableOutput("expected an 'under PATH' line first")
        base = output[0][6:].rstrip("/") or "/"
        found = []
        for line in output[1:]:
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 3:
                raise UnparseableOutput(f"/proc/mounts: unexpected line {line!r}")
            target = parts[1].replace("\\040", " ")
            if target == base or target.startswith(base.rstrip("/") + "/"):
                found.append({"source": parts[0].replace("\\040", " "), "target": target, "fstype": parts[2]})
        return found

    @staticmethod
    def default():
        return []


def _find_pattern_escape(text: str) -> str:
    """``text`` as a literal for find's ``-lname`` pattern (fnmatch): backslash before ``\\ * ? [ ]``."""
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)


_USE_KIND = re.compile(r"(cwd|root|fd/[0-9]{1,10})")
_FIND_ENTRY = re.compile(r"find: ['\u2018`]/proc/([0-9]{1,10})/[^'\u2019]*['\u2019]: (.*)")
_FIND_COMPLETE = ("No such file or directory", "Permission denied")


class ProcessesUsing(KeystoneFact):
    """Processes whose working directory, root directory or an open file descriptor is ``path``
    or below it -- what keeps ``umount -R /mnt`` and ``zpool export`` "busy". Needs neither
    ``fuser`` nor ``lsof``: one GNU ``find`` over the ``/proc/PID/{cwd,root,fd/*}`` symlinks
    (``-lname``; find does not follow them), then each match's ``/proc/PID/comm`` read with
    shell builtins.

    Arguments:
        path: absolute path, e.g. ``/mnt`` (where nixos-anywhere mounts the new system). Taken
            literally: glob characters (``* ? [ ] \\``) are escaped for find's pattern syntax, a
            trailing ``/`` is dropped. A relative path is an error (the ``/proc`` links are absolute).

    ``uses`` are ``"cwd TARGET"``, ``"root TARGET"`` (a chroot such as ``nixos-enter``) or
    ``"fd/N TARGET"``; a newline in TARGET shows as ``?``, a deleted file ends in `` (deleted)``.
    The probe's own processes (its shell and that shell's children: find, tr, the read loop) are
    left out; the processes that started it (the SSH session, pyinfra's local shell) are not, as
    they would keep the path busy for a following unmount too. ``unreadable`` lists pids whose
    links find could not read (``Permission denied``: not root, or a container hiding processes);
    links that vanished during the scan are normal and ignored. Any other error output from the
    probe (e.g. a ``find`` without ``-lname``) is an error, never an empty answer.

    Example: ``{"path": "/mnt", "processes": [{"pid": 4711, "command": "bash", "uses": ["cwd /mnt/etc"]},
    {"pid": 4790, "command": "nix-daemon", "uses": ["root /mnt", "fd/5 /mnt/nix/var/nix/db/db.sqlite"]}],
    "count": 2, "unreadable": []}``
    """

    requires = "find"

    def command(self, path):
        base = str(path).rstrip("/")
        exact, below = _find_pattern_escape(base) or "/", _find_pattern_escape(base) + "/*"
        return ("cd / || exit 1; "
                f"printf '%s\\n' {shell_quote('path ' + (base or '/'))}; kc_me=$$; "
                "LC_ALL=C find /proc/[0-9]*/cwd /proc/[0-9]*/root /proc/[0-9]*/fd -maxdepth 1 "
                f"\\( -lname {shell_quote(exact)} -o -lname {shell_quote(below)} \\) -printf '%p %l\\0' "
                "| tr '\\n\\0' '?\\n' | while IFS= read -r kc_l; do "
                'kc_r=${kc_l#/proc/}; kc_pid=${kc_r%%/*}; kc_r=${kc_r#*/}; '
                '[ "$kc_pid" = "$kc_me" ] && continue; '
                'kc_pp=; while read -r kc_k kc_v; do [ "$kc_k" = PPid: ] && kc_pp=$kc_v && break; '
                'done 2>/dev/null </proc/"$kc_pid"/status; '
                'case $kc_pp in ""|"$kc_me") continue;; esac; '
                'kc_c=; read -r kc_c 2>/dev/null </proc/"$kc_pid"/comm; '
                "printf 'comm %s %s\\nuse %s %s\\n' \"$kc_pid\" \"$kc_c\" \"$kc_pid\" \"$kc_r\"; done")

    def parse(self, result: ProbeOutput):
        self.raise_for_exit(result)
        unreadable: set[int] = set()
        lines = [line.strip() for line in result.stderr if line.strip()]
        for i, line in enumerate(lines):
            entry = _FIND_ENTRY.fullmatch(line)
            last = i == len(lines) - 1
            if entry:
                message = entry.group(2)
                if message == "No such file or directory":  # the process or fd went away mid-scan
                    continue
                if last and message not in _FIND_COMPLETE:  # cut short by the batch's stderr limit
                    continue
                unreadable.add(parse_int(entry.group(1), "pid in find's error output"))
            elif last and any(prefix.startswith(line) or line.startswith(prefix)
                              for prefix in ("find: '/proc/", "find: \u2018/proc/")):
                continue  # a per-entry message cut short by the batch's stderr limit
            else:
                raise ProbeFailed(f"the /proc scan failed: {line[:200]}")
        data = self.process(result.stdout)
        data["unreadable"] = sorted(unreadable)
        return data

    def process(self, output):
        lines = [line for line in output if line.strip()]
        if not lines or not lines[0].startswith("path "):
            raise UnparseableOutput("expected a 'path PATH' line first")
        path = lines[0][5:]
        if not path.startswith("/"):
            raise UnparseableOutput(f"path must be absolute (the /proc links are), got {path!r}")
        commands: dict[int, str] = {}
        uses: dict[int, list[str]] = {}
        for line in lines[1:]:
            tag, _, rest = line.partition(" ")
            pid_text, _, value = rest.partition(" ")
            if tag not in ("comm", "use"):
                raise UnparseableOutput(f"unexpected line {line[:120]!r}")
            pid = parse_int(pid_text, f"pid in {line[:120]!r}")
            if pid < 1:
                raise UnparseableOutput(f"not a pid: {line[:120]!r}")
            if tag == "comm":
                commands[pid] = value
                continue
            kind, _, target = value.partition(" ")
            if not _USE_KIND.fullmatch(kind) or not target:
                raise UnparseableOutput(f"expected 'use PID cwd|root|fd/N TARGET', got {line[:120]!r}")
            if value not in uses.setdefault(pid, []):
                uses[pid].append(value)
        processes = [{"pid": pid, "command": commands.get(pid, ""), "uses": uses[pid]} for pid in sorted(uses)]
        return {"path": path, "processes": processes, "count": len(processes), "unreadable": []}


SWAP_SAMPLE_SECONDS = 1  # vmstat fallback only (kernels without PSI); PSI needs no sample window
MEMINFO_KEYS = ("MemTotal", "MemAvailable", "SwapTotal", "SwapFree")


def _kernel_counter(text: str, what: str) -> int:
    """A /proc/vmstat or /proc/meminfo number: unsigned, at most 64 bits (larger would overflow
    the float arithmetic below with an OverflowError instead of an UnparseableOutput)."""
    value = parse_int(text, what)
    if not 0 <= value < 2**64:
        raise UnparseableOutput(f"expected an unsigned 64-bit number for {what}, got {text!r}")
    return value


def _psi_percent(text: str, what: str) -> float:
    """A PSI ``avgN`` value: a percentage of wall time, 0..100."""
    try:
        value = float(text)
    except ValueError:
        raise UnparseableOutput(f"expected a percentage for {what}, got {text!r}") from None
    if not 0.0 <= value <= 100.0:  # also rejects nan
        raise UnparseableOutput(f"expected a percentage (0-100) for {what}, got {text!r}")
    return value


class SwapActivity(KeystoneFact):
    """Memory pressure and swap use: Linux PSI (``/proc/pressure/memory``) when the kernel has it,
    else ``/proc/vmstat`` pswpin/pswpout read twice, 1 s apart; plus ``/proc/meminfo`` (MemTotal,
    MemAvailable, SwapTotal, SwapFree).

    ``source`` says which measurement the host gave: ``"psi"`` fills ``memory_full_avg10`` and
    ``memory_some_avg10`` (percent of the last 10 s in which all / at least one non-idle task
    stalled waiting for memory; no sleep), ``"vmstat"`` fills ``swap_in_per_s``,
    ``swap_out_per_s`` and ``swap_pages_per_s`` (pages/s over the 1 s sample); the other
    measurement's fields are null.

    Rule used by the swap-thrashing check: PSI memory ``full`` avg10 at or above 10 (for 10% of
    the last 10 s every non-idle task was stalled on memory) is thrashing; without PSI, pages
    swapped in+out per second (``swap_pages_per_s``) at or above 1000 (≈ 4 MiB/s of 4 KiB pages)
    is; so is swap more than 90% full (``swap_used_pct``) with under 5% of RAM available
    (``memory_exhausted``).

    Example: ``{"source": "psi", "memory_full_avg10": 0.0, "memory_some_avg10": 0.12,
    "swap_in_per_s": null, "swap_out_per_s": null, "swap_pages_per_s": null,
    "swap_total": 4294967296, "swap_free": 4000000000, "swap_used_pct": 6.9, "mem_total": 8e9,
    "mem_available": 5e9, "mem_available_pct": 62.5, "memory_exhausted": false}``
    """

    timeout = 20

    def command(self):
        vmstat = "grep -E '^pswp(in|out) ' /proc/vmstat"
        # PSI and meminfo are read with the shell's own `read` (no cat, sed or grep: host CPU is
        # mostly process creation); meminfo stops at SwapFree, the last of the four keys the
        # kernel prints. The rare no-PSI fallback keeps grep.
        return ("kc_p=; while IFS= read -r kc_l || [ -n \"$kc_l\" ]; do printf 'psi %s\\n' \"$kc_l\"; kc_p=1; "
                "done 2>/dev/null </proc/pressure/memory; "
                f"if [ -z \"$kc_p\" ]; then {vmstat} | sed 's/^/a /'; sleep {SWAP_SAMPLE_SECONDS}; "
                f"{vmstat} | sed 's/^/b /'; fi; "
                "while IFS= read -r kc_l || [ -n \"$kc_l\" ]; do case $kc_l in MemTotal:*|MemAvailable:*|SwapTotal:*) "
                "printf '%s\\n' \"$kc_l\";; SwapFree:*) printf '%s\\n' \"$kc_l\"; break;; esac; done </proc/meminfo")

    def process(self, output):
        psi: dict[str, float] = {}
        counters: dict[str, int] = {}
        mem: dict[str, int] = {}
        for line in output:
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "psi" and parts[1] in ("some", "full"):
                fields = dict(p.partition("=")[::2] for p in parts[2:])
                if "avg10" not in fields:
                    raise UnparseableOutput(f"/proc/pressure/memory: no avg10 in {line!r}")
                psi[parts[1]] = _psi_percent(fields["avg10"], f"PSI memory {parts[1]} avg10")
            elif len(parts) == 3 and parts[0] in ("a", "b") and parts[1] in ("pswpin", "pswpout"):
                counters[f"{parts[0]}_{parts[1]}"] = _kernel_counter(parts[2], f"/proc/vmstat {parts[1]}")
            elif len(parts) >= 2 and parts[0][:-1] in MEMINFO_KEYS and parts[0].endswith(":"):
                mem[parts[0][:-1]] = _kernel_counter(parts[1], parts[0]) * 1024
        missing = [k for k in MEMINFO_KEYS if k not in mem]
        if missing:
            raise UnparseableOutput(f"/proc/meminfo: missing {', '.join(missing)}")
        rates: dict[str, float | None] = {"swap_in_per_s": None, "swap_out_per_s": None, "swap_pages_per_s": None}
        if "full" in psi:
            source = "psi"
        elif all(k in counters for k in ("a_pswpin", "a_pswpout", "b_pswpin", "b_pswpout")):
            source = "vmstat"
            sin = max(counters["b_pswpin"] - counters["a_pswpin"], 0) / SWAP_SAMPLE_SECONDS
            sout = max(counters["b_pswpout"] - counters["a_pswpout"], 0) / SWAP_SAMPLE_SECONDS
            rates = {"swap_in_per_s": float(sin), "swap_out_per_s": float(sout), "swap_pages_per_s": float(sin + sout)}
        else:
            raise UnparseableOutput("neither a PSI 'full' line (/proc/pressure/memory) nor both /proc/vmstat "
                                    f"pswpin/pswpout samples; got {sorted(psi) + sorted(counters)}")
        total, free = mem["SwapTotal"], mem["SwapFree"]
        mem_total, mem_avail = mem["MemTotal"], mem["MemAvailable"]
        used_pct = round(100.0 * (total - free) / total, 1) if total else 0.0
        avail_pct = round(100.0 * mem_avail / mem_total, 1) if mem_total else 0.0
        return {"source": source,
                "memory_full_avg10": psi.get("full") if source == "psi" else None,
                "memory_some_avg10": psi.get("some") if source == "psi" else None,
                **rates,
                "swap_total": total, "swap_free": free, "swap_used_pct": used_pct,
                "mem_total": mem_total, "mem_available": mem_avail, "mem_available_pct": avail_pct,
                "memory_exhausted": bool(total and used_pct > 90 and avail_pct < 5)}


class LoadAverage(KeystoneFact):
    """Load averages (``/proc/loadavg``) per CPU (``nproc``), with the busiest processes (``ps``)
    as evidence when the load is high.

    Arguments:
        top_per_cpu: list the busiest processes only when the 1-minute load per CPU is at least
            this, less 0.01 (the check passes its ``max_load_per_cpu``, so a failing check always
            has the list; the 0.01 covers ``load1_per_cpu`` being rounded); default 1.0

    ``top`` (at most 5 processes, busiest first) is empty below that load: ``ps`` is most of the
    probe's cost. When the CPU count cannot be read, the list is collected.

    Example: ``{"load1": 3.2, "load5": 2.0, "load15": 1.1, "cpus": 2, "load1_per_cpu": 1.6,
    "top": [{"pid": 812, "cpu": 95.0, "command": "z_wr_iss"}]}``; at low load ``"top": []``
    """

    def command(self, top_per_cpu: float = 1.0):
        limit = float(top_per_cpu)  # a non-number raises here: never pasted into the shell
        limit = min(limit, 1e6) if limit >= 0 else 0.0  # nan and negatives: always list
        # awk prints the load line and the CPU count and exits 1 below the limit (less 0.01: the
        # check compares a rounded load1_per_cpu); an unreadable CPU count makes the limit 0: list.
        return ("kc_n=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN); "
                f"awk -v n=\"$kc_n\" -v t={max(limit - 0.01, 0.0):.2f} "
                "'{print; print \"cpus \" n; exit !($1 + 0 >= t * n)}' /proc/loadavg || exit 0; "
                "ps -eo pid=,pcpu=,comm= --sort=-pcpu 2>/dev/null | sed 's/^/ps /;5q'")

    def process(self, output):
        if not output:
            raise UnparseableOutput("/proc/loadavg printed nothing")
        parts = output[0].split()
        if len(parts) < 3:
            raise UnparseableOutput(f"/proc/loadavg: unexpected {output[0]!r}")
        try:
            loads = [float(p) for p in parts[:3]]
        except ValueError:
            raise UnparseableOutput(f"/proc/loadavg: not numbers: {output[0]!r}") from None
        cpus, top = None, []
        for line in output[1:]:
            if line.startswith("cpus "):
                cpus = parse_int(line[5:], "nproc")
            elif line.startswith("ps "):
                p = line[3:].split(None, 2)
                if len(p) == 3:
                    try:
                        top.append({"pid": int(p[0]), "cpu": float(p[1]), "command": p[2]})
                    except ValueError:
                        raise UnparseableOutput(f"ps: unexpected line {line!r}") from None
        if not cpus or cpus < 1:
            raise UnparseableOutput("could not read the CPU count (nproc)")
        return {"load1": loads[0], "load5": loads[1], "load15": loads[2], "cpus": cpus,
                "load1_per_cpu": round(loads[0] / cpus, 3), "top": top}
