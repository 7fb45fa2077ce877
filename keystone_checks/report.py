"""The run report: one data model every writer (console, JSON, JUnit, Prometheus, ...) reads.

Shape (documented by ``schema/report.schema.json``)::

    {"schema": "keystone-checks/report/v1", "tool": {...}, "phase": "preflight",
     "started_at": ISO-8601, "finished_at": ISO-8601, "duration_s": 1.2, "dry_run": false,
     "fix_requested": false,
     "summary": {"hosts": 2, "outcomes": {"pass": 9, "fail": 1, ...}, "status": "critical", "exit_code": 2},
     "hosts": [{"name": "...", "roles": [...], "status": "ok|error|unreachable", "error": null,
                "duration_s": 0.3, "results": [CheckResult...]}]}
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .evaluate import CheckResult, Outcome

SCHEMA_ID = "keystone-checks/report/v1"

# Nagios plugin convention. Precedence: a known critical failure outranks "unknown", which
# outranks warnings: on-call should see the actionable state first.
EXIT_OK, EXIT_WARNING, EXIT_CRITICAL, EXIT_UNKNOWN = 0, 1, 2, 3
_STATUS = {EXIT_OK: "ok", EXIT_WARNING: "warning", EXIT_CRITICAL: "critical", EXIT_UNKNOWN: "unknown"}
_FAILING = {Outcome.FAIL, Outcome.FIX_FAILED, Outcome.WOULD_FIX}


@dataclass
class HostReport:
    name: str
    roles: list[str] = field(default_factory=list)
    status: str = "ok"  # ok | error (host-level problem) | unreachable
    error: str | None = None
    duration_s: float = 0.0
    results: list[CheckResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "roles": self.roles, "status": self.status, "error": self.error,
                "duration_s": round(self.duration_s, 4), "results": [r.to_dict() for r in self.results]}


def exit_code(hosts: list[HostReport]) -> int:
    critical = warning = unknown = False
    for host in hosts:
        if host.status != "ok":
            unknown = True
        for r in host.results:
            if r.outcome == Outcome.ERROR:
                unknown = True
            elif r.outcome in _FAILING:
                critical |= r.severity == "critical"
                warning |= r.severity == "warning"
    if critical:
        return EXIT_CRITICAL
    if unknown:
        return EXIT_UNKNOWN
    return EXIT_WARNING if warning else EXIT_OK


def build(phase: str, hosts: list[HostReport], started: float, finished: float, dry_run: bool, fix_requested: bool) -> dict[str, Any]:
    outcomes = {str(o): 0 for o in Outcome}
    for host in hosts:
        for r in host.results:
            outcomes[str(r.outcome)] += 1
    code = exit_code(hosts)
    return {
        "schema": SCHEMA_ID,
        "tool": {"name": "keystone-checks", "version": __version__},
        "phase": phase,
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "duration_s": round(finished - started, 4),
        "dry_run": dry_run,
        "fix_requested": fix_requested,
        "summary": {"hosts": len(hosts), "outcomes": outcomes, "status": _STATUS[code], "exit_code": code},
        "hosts": [h.to_dict() for h in sorted(hosts, key=lambda h: h.name)],
    }


def write_atomic(path: str | Path, text: str) -> Path:
    """Write then rename, so a reader (node_exporter, a dashboard) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp makes 0600 files and the rename keeps the mode: node_exporter (not root) could not
        # read the textfile. Reports hold no secrets: the usual 0666 minus the process umask.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, default=str) + "\n"


def default_path(phase: str, when: float | None = None) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when or time.time()))
    return Path("reports") / f"{phase}-{stamp}.json"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")
