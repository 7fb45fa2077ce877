"""The run report: one data model every writer (console, JSON, JUnit, Prometheus, ...) reads.

Shape (documented by ``schema/report.schema.json``)::

    {"schema": "keystone-checks/report/v1", "tool": {...}, "phase": "preflight",
     "started_at": ISO-8601, "finished_at": ISO-8601, "duration_s": 1.2, "dry_run": false,
     "fix_requested": false,
     "summary": {"hosts": 2, "outcomes": {"pass": 9, "fail": 1, ...}, "status": "critical", "exit_code": 2,
                 "unknown_because": ["web-2: critical check pool-healthy could not run: pool-imported did not pass"],
                 "host_statuses": {"ok": 1, "unreachable": 1}},
     "hosts": [{"name": "...", "roles": [...], "status": "ok|error|unreachable", "error": null,
                "started_at": ISO-8601, "finished_at": ISO-8601,
                "duration_s": 0.3, "results": [CheckResult...]}]}

A failing result (fail, fix-failed, would-fix) also carries ``remedy`` (keystone_checks/engine/remedy.py):
the fix's summary and risk and the commands that run it, dry first, fix requested or not.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import KeystoneChecksError
from .evaluate import CheckResult, Outcome, is_failing
from .remedy import with_commands

SCHEMA_ID = "keystone-checks/report/v1"

# Nagios plugin convention. Precedence: a known critical failure outranks "unknown", which
# outranks warnings: on-call should see the actionable state first.
EXIT_OK, EXIT_WARNING, EXIT_CRITICAL, EXIT_UNKNOWN = 0, 1, 2, 3
_STATUS = {EXIT_OK: "ok", EXIT_WARNING: "warning", EXIT_CRITICAL: "critical", EXIT_UNKNOWN: "unknown"}


@dataclass
class HostReport:
    name: str
    roles: list[str] = field(default_factory=list)
    status: str = "ok"  # ok | error (host-level problem) | unreachable
    error: str | None = None
    duration_s: float = 0.0
    results: list[CheckResult] = field(default_factory=list)
    # When this host was looked at (epoch seconds): a merged fleet report judges each host's age by
    # its own time, not by the newest shard's. Created when the host's look starts (pipeline.check_host).
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None  # None: started_at + duration_s

    def to_dict(self) -> dict[str, Any]:
        duration = _finite(self.duration_s, 0.0)
        finished = self.finished_at if self.finished_at is not None else self.started_at + duration
        return {"name": self.name, "roles": self.roles, "status": self.status, "error": self.error,
                "started_at": _iso(self.started_at), "finished_at": _iso(finished),
                "duration_s": round(duration, 4), "results": [r.to_dict() for r in self.results]}


def assess(hosts: list[HostReport]) -> tuple[int, list[str]]:
    """The Nagios exit code of ``hosts`` and why it is UNKNOWN, when it is (one line per cause).

    UNKNOWN: a host not checked (error, unreachable), a check that could not be evaluated, or a
    critical check skipped because a dependency did not pass (it could not run: its problem may be
    there, unseen). Precedence: CRITICAL > UNKNOWN > WARNING > OK.
    """
    critical = warning = False
    reasons: list[str] = []
    for host in hosts:
        if host.status != "ok":
            reasons.append(f"{host.name}: {host.status}" + (f" ({host.error})" if host.error else ""))
        for r in host.results:
            if r.outcome == Outcome.ERROR:
                reasons.append(f"{host.name}: {r.check} could not be evaluated")
            elif r.outcome == Outcome.SKIPPED and r.severity == "critical" and r.blocked_by:
                reasons.append(f"{host.name}: critical check {r.check} could not run: "
                               f"{', '.join(r.blocked_by)} did not pass")
            elif is_failing(r.outcome):
                critical |= r.severity == "critical"
                warning |= r.severity == "warning"
    if critical:
        return EXIT_CRITICAL, reasons
    if reasons:
        return EXIT_UNKNOWN, reasons
    return (EXIT_WARNING if warning else EXIT_OK), reasons


def exit_code(hosts: list[HostReport]) -> int:
    return assess(hosts)[0]


def build(phase: str, hosts: list[HostReport], started: float, finished: float, dry_run: bool, fix_requested: bool,
          inventory: str | None = None) -> dict[str, Any]:
    """The report. ``inventory``: the inventory the run read, so each remedy's commands name it (else
    they say INVENTORY)."""
    outcomes = {str(o): 0 for o in Outcome}
    for host in hosts:
        for r in host.results:
            outcomes[str(r.outcome)] += 1
    code, reasons = assess(hosts)
    host_statuses: dict[str, int] = {}
    for host in hosts:
        host_statuses[host.status] = host_statuses.get(host.status, 0) + 1
    host_dicts = [h.to_dict() for h in sorted(hosts, key=lambda h: h.name)]
    for entry in host_dicts:
        for r in entry["results"]:
            if r.get("remedy"):
                r["remedy"] = with_commands(r["remedy"], phase, entry["name"], inventory)
    data: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "tool": {"name": "keystone-checks", "version": __version__},
        "phase": phase,
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "duration_s": round(_finite(finished - started, 0.0), 4),
        "dry_run": dry_run,
        "fix_requested": fix_requested,
        "summary": {"hosts": len(hosts), "outcomes": outcomes, "status": _STATUS[code], "exit_code": code,
                    "unknown_because": reasons, "host_statuses": host_statuses},
        "hosts": host_dicts,
    }
    if inventory:
        data["inventory"] = inventory
    return data


def _finite(value: Any, default: float) -> float:
    """A finite, non-negative number (durations): NaN/inf from a clock or a bug become ``default``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) and number >= 0 else default


class ReportWriteError(KeystoneChecksError):
    """A report could not be written; the message names the path and why."""


def write_atomic(path: str | Path, text: str) -> Path:
    """Write a regular file atomically (temporary file in the same directory, then rename), so a
    reader (node_exporter, a dashboard) never sees half a file.

    Only regular files are written: a target that exists and is not one (``/dev/full``,
    ``/dev/stdout``, a directory, a symlink to any of these) is refused, never renamed over; a
    symlink to a regular file replaces the file it points to. Every failure (refused target, no
    permission, full disk) raises ``ReportWriteError`` naming the path; ``-`` (stdout) is the
    caller's business (``reports.write_reports``).

    Example::

        write_atomic("reports/sweep.json", to_json(report))
    """
    path = Path(path)
    try:
        # os.stat follows symlinks, /proc magic links included (/dev/stdout -> /proc/self/fd/1 -> a pipe)
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None  # absent, or a symlink to an absent file: created where it points
    except OSError as exc:
        raise ReportWriteError(f"{path}: cannot write the report ({exc.strerror})") from None
    target = Path(os.path.realpath(path))
    if mode is not None and not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) \
            else "a pipe or socket" if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) else "not a regular file"
        shown = f"{path} (-> {target})" if target != path else str(path)
        raise ReportWriteError(f"{shown} is {kind}: reports are written to regular files only "
                               "(give a file path, or '-' for stdout, e.g. --report json:-)")
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        # mkstemp makes 0600 files and the rename keeps the mode: node_exporter (not root) could not
        # read the textfile. Reports hold no secrets: the usual 0666 minus the process umask.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())  # a full disk shows here, before the old report is replaced
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise ReportWriteError(f"{path}: cannot write the report ({exc.strerror or exc})") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def to_json(report: dict[str, Any]) -> str:
    """Strict JSON (RFC 8259): non-finite floats anywhere (evidence parsed from a host, a duration)
    become null instead of the invalid tokens NaN/Infinity that json.dumps writes by default."""
    return json.dumps(_json_safe(report), indent=2, default=str, allow_nan=False) + "\n"


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def default_path(phase: str, when: float | None = None) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when or time.time()))
    return Path("reports") / f"{phase}-{stamp}.json"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(_finite(ts, 0.0), tz=UTC).isoformat(timespec="seconds")
