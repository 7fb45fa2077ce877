"""Nagios plugin output: one status line with perfdata; the exit code is ``summary.exit_code``.

    KEYSTONE CRITICAL - 1 critical, 0 warning, 2 unknown | pass=9 fail=1 error=0 ... hosts=2 unreachable=0 duration=0.8s
"""

from __future__ import annotations

from typing import Any

from .safe_text import one_line, scrub

_FAILING = {"fail", "fix-failed", "would-fix"}


def write(report: dict[str, Any]) -> str:
    report = scrub(report, one_line)  # one status line: no host text may break or colour it
    critical = warning = unknown = 0
    worst: list[str] = []
    for host in report["hosts"]:
        if host["status"] != "ok":
            unknown += 1
            worst.append(f"{host['name']} {host['status']}")
        for r in host["results"]:
            if r["outcome"] == "error":
                unknown += 1
            elif r["outcome"] == "skipped" and r["severity"] == "critical" and r.get("blocked_by"):
                unknown += 1  # a critical check that could not run: its problem may be there, unseen
                worst.append(f"{host['name']}:{r['check']} not run")
            elif r["outcome"] in _FAILING:
                if r["severity"] == "critical":
                    critical += 1
                    worst.insert(0, f"{host['name']}:{r['check']}")
                elif r["severity"] == "warning":
                    warning += 1
                    worst.append(f"{host['name']}:{r['check']}")
    summary = report["summary"]
    status = summary["status"].upper()
    unreachable = sum(1 for h in report["hosts"] if h["status"] == "unreachable")
    perf = " ".join(f"{k}={v}" for k, v in summary["outcomes"].items())
    perf += f" hosts={summary['hosts']} unreachable={unreachable} duration={report['duration_s']}s"
    detail = f" ({', '.join(worst[:5])}{', ...' if len(worst) > 5 else ''})" if worst else ""
    text = f"KEYSTONE {status} - {critical} critical, {warning} warning, {unknown} unknown{detail}"
    return f"{text.replace('|', '/')} | {perf}\n"
