"""Nagios plugin output: a status line with perfdata, then the long output (plugin API: lines after
the first) with one line per failing check: its fix and the command to run it, dry first. The exit
code is ``summary.exit_code``.

    KEYSTONE CRITICAL - 1 critical, 0 warning, 2 unknown (web-1:pool-imported) | pass=9 fail=1 ... duration=0.8s
    web-1:pool-imported (critical fail): fix (safe): Import the pool; dry run: $ keystone-checks run ...
"""

from __future__ import annotations

from typing import Any

from ..engine.evaluate import is_failing, worst_first
from . import DEFAULT, Options
from .safe_text import one_line, scrub

LONG_OUTPUT_LINES = 50  # Nagios keeps ~8 KB of plugin output by default: the worst lines first


def write(report: dict[str, Any], options: Options = DEFAULT) -> str:
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
            elif is_failing(r["outcome"]):
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
    return f"{text.replace('|', '/')} | {perf}\n" + "".join(line.replace("|", "/") + "\n" for line in _long_output(report))


def _long_output(report: dict[str, Any]) -> list[str]:
    failing = sorted(((h["name"], r) for h in report["hosts"] for r in h["results"] if is_failing(r["outcome"])),
                     key=lambda hr: (*worst_first(hr[1]["outcome"], hr[1]["severity"]), hr[0], hr[1]["check"]))
    lines = []
    for host, r in failing[:LONG_OUTPUT_LINES]:
        line = f"{host}:{r['check']} ({r['severity']} {r['outcome']})"
        remedy = r.get("remedy")
        if remedy:
            line += f": fix ({remedy['risk']}): {remedy['summary'][:200]}"
            if remedy.get("dry"):
                line += f"; dry run: $ {remedy['dry'][0]}"
        error = (r.get("fix") or {}).get("error")
        if error:
            line += f"; fix error: {str(error)[:200]}"
        lines.append(line)
    if len(failing) > LONG_OUTPUT_LINES:
        lines.append(f"... {len(failing) - LONG_OUTPUT_LINES} more failing (see the JSON or HTML report)")
    return lines
