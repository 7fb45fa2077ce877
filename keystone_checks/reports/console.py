"""Readable per-host result table for a terminal (colour only when it is one)."""

from __future__ import annotations

import shutil
from typing import Any

from .safe_text import one_line, scrub

_COLOURS = {"pass": "32", "fixed": "32", "fail": "31", "fix-failed": "31", "error": "35",
            "would-fix": "33", "skipped": "2", "unreachable": "35"}
_ORDER = {"fail": 0, "fix-failed": 1, "error": 2, "would-fix": 3, "fixed": 4, "pass": 5, "skipped": 6}


def render(report: dict[str, Any], colour: bool = False, show_skipped: bool = False, own_exit: bool = True) -> str:
    """The console table. ``own_exit``: this process exits with the report's code (``keystone-checks
    run``); under the pyinfra CLI it does not (pyinfra exits by its own rules), and the header says so
    instead of claiming an exit code the shell will not see."""
    # Host text never reaches the terminal raw (escape sequences) nor forges a line of the table.
    report = scrub(report, one_line)
    width = shutil.get_terminal_size((120, 20)).columns
    out: list[str] = []

    def paint(text: str, key: str) -> str:
        code = _COLOURS.get(key)
        return f"\033[{code}m{text}\033[0m" if colour and code else text

    code = report['summary']['exit_code']
    status = (f"status {report['summary']['status'].upper()} (exit {code})" if own_exit else
              f"status {report['summary']['status'].upper()} (Nagios code {code} in the report; pyinfra's own exit "
              "code does not follow it: timers, cron and CI use `keystone-checks run`)")
    out.append(f"keystone-checks {report['phase']}: {report['summary']['hosts']} host(s), {status}")
    reasons = report["summary"].get("unknown_because") or []
    if reasons and report["summary"]["status"] == "unknown":
        out.append("unknown because: " + "; ".join(reasons[:5]) + (f"; ... ({len(reasons)} in all)" if len(reasons) > 5 else ""))
    for host in report["hosts"]:
        roles = ",".join(host["roles"]) or "?"
        out.append("")
        if host["status"] != "ok":
            out.append(paint(f"{host['name']} [{roles}]: {host['status'].upper()}: {host['error']}", "unreachable"))
        else:
            out.append(f"{host['name']} [{roles}]")
        results = sorted(host["results"], key=lambda r: (_ORDER.get(r["outcome"], 9), r["check"]))
        hidden = 0
        for r in results:
            if r["outcome"] == "skipped" and not show_skipped and r["message"].startswith("applies to"):
                hidden += 1
                continue
            label = paint(f"{r['outcome']:<10}", r["outcome"])
            line = f"  {label} {r['severity']:<8} {r['check']}"
            if r["outcome"] != "pass":
                message = r["message"]
                room = max(width - len(line) + (len(label) - 10) - 3, 20)
                if colour and len(message) > room:  # a terminal: keep one line per check; logs get it all
                    message = message[: room - 3] + "..."
                line += f": {message}"
            out.append(line)
            fix = r.get("fix") or {}
            for command in fix.get("commands", []) if r["outcome"] in ("would-fix", "fix-failed") else []:
                out.append(f"      $ {command}")
        if hidden:
            out.append(f"  ({hidden} check(s) not for this host's role)")
    counts = ", ".join(f"{k} {v}" for k, v in report["summary"]["outcomes"].items() if v)
    out.append("")
    out.append(f"totals: {counts or 'no checks ran'}")
    return "\n".join(out) + "\n"
