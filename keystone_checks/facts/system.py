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


class MountsUnder(KeystoneFact):
    """Filesystems mounted at or below ``path`` (``/proc/mounts``), deepest last.

    Arguments:
        path: e.g. ``/mnt`` (where nixos-anywhere mounts the new system)

    Example: ``[{"source": "rpool/crypt/system", "target": "/mnt", "fstype": "zfs"}, {"source": "/dev/vda1", "target": "/mnt/boot", "fstype": "vfat"}]``
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


SWAP_SAMPLE_SECONDS = 2


class SwapActivity(KeystoneFact):
    """Swap use and swap traffic over a short sample: ``/proc/meminfo`` (SwapTotal, SwapFree,
    MemTotal, MemAvailable) and ``/proc/vmstat`` pswpin/pswpout read twice, 2 s apart.

    Rule used by the swap-thrashing check: pages swapped in+out per second (``swap_pages_per_s``)
    at or above 1000 (≈ 4 MiB/s of 4 KiB pages, sustained over the sample) is thrashing;
    so is swap more than 90% full (``swap_used_pct``) with under 5% of RAM available.

    Example: ``{"swap_total": 4294967296, "swap_free": 4000000000, "swap_used_pct": 6.9, "mem_total": 8e9,
    "mem_available": 5e9, "mem_available_pct": 62.5, "swap_in_per_s": 0.0, "swap_out_per_s": 0.0,
    "swap_pages_per_s": 0.0, "memory_exhausted": false}``
    """

    timeout = 20

    def command(self):
        return ("grep -E '^pswp(in|out) ' /proc/vmstat | sed 's/^/a /'; "
                f"sleep {SWAP_SAMPLE_SECONDS}; "
                "grep -E '^pswp(in|out) ' /proc/vmstat | sed 's/^/b /'; "
                "grep -E '^(MemTotal|MemAvailable|SwapTotal|SwapFree):' /proc/meminfo")

    def process(self, output):
        v: dict[str, int] = {}
        for line in output:
            parts = line.split()
            if len(parts) == 3 and parts[0] in ("a", "b"):
                v[f"{parts[0]}_{parts[1]}"] = parse_int(parts[2], parts[1])
            elif len(parts) >= 2 and parts[0].endswith(":"):
                v[parts[0][:-1]] = parse_int(parts[1], parts[0]) * 1024
        needed = ("a_pswpin", "a_pswpout", "b_pswpin", "b_pswpout", "MemTotal", "SwapTotal", "SwapFree")
        missing = [k for k in needed if k not in v]
        if missing:
            raise UnparseableOutput(f"swap sample incomplete, missing {missing}")
        sin = max(v["b_pswpin"] - v["a_pswpin"], 0) / SWAP_SAMPLE_SECONDS
        sout = max(v["b_pswpout"] - v["a_pswpout"], 0) / SWAP_SAMPLE_SECONDS
        total, free = v["SwapTotal"], v["SwapFree"]
        mem_total = v["MemTotal"]
        mem_avail = v.get("MemAvailable", 0)
        used_pct = round(100.0 * (total - free) / total, 1) if total else 0.0
        avail_pct = round(100.0 * mem_avail / mem_total, 1) if mem_total else 0.0
        return {"swap_total": total, "swap_free": free, "swap_used_pct": used_pct,
                "mem_total": mem_total, "mem_available": mem_avail, "mem_available_pct": avail_pct,
                "swap_in_per_s": sin, "swap_out_per_s": sout, "swap_pages_per_s": sin + sout,
                "memory_exhausted": bool(total and used_pct > 90 and avail_pct < 5)}


class LoadAverage(KeystoneFact):
    """Load averages (``/proc/loadavg``) per CPU (``nproc``), with the busiest processes (``ps``)
    as evidence.

    Example: ``{"load1": 3.2, "load5": 2.0, "load15": 1.1, "cpus": 2, "load1_per_cpu": 1.6,
    "top": [{"pid": 812, "cpu": 95.0, "command": "z_wr_iss"}]}``
    """

    def command(self):
        return ("cat /proc/loadavg; echo \"cpus $(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)\"; "
                "ps -eo pid=,pcpu=,comm= --sort=-pcpu 2>/dev/null | head -n 5 | sed 's/^/ps /'")

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
