"""The table for a terminal: per host what failed and why (wrapped, never cut), the fix and its
commands (dry first), then a fleet roll-up by check and the totals, hosts not checked counted.

Checks skipped because a dependency did not pass, or not for the host's role, are counted, not
listed (``Options.verbose`` lists them: on a 31-host sweep they were most of the lines).
``Options.quiet``: only what fails. Colour only when ``Options.colour`` (a terminal, no NO_COLOR).
"""

from __future__ import annotations

import shutil
import textwrap
from typing import Any

from ..engine.evaluate import is_failing, outcome_rank, severity_rank, worst_first
from ..engine.remedy import guide_link
from . import DEFAULT, Options
from .safe_text import one_line, scrub

_COLOURS = {"pass": "32", "fixed": "32", "fail": "31", "fix-failed": "1;31", "error": "35",
            "would-fix": "33", "skipped": "2", "waived": "36",
            # hosts not checked: unreachable/timeout (network) apart from error (host data, a bug)
            "unreachable": "34", "timeout": "34", "host-error": "1;35"}
ROLLUP_NAMES = 5  # host names shown per check in the roll-up


def _dependency_skip(r: dict[str, Any]) -> bool:
    return r["outcome"] == "skipped" and bool(r.get("blocked_by"))


def _role_skip(r: dict[str, Any]) -> bool:
    return r["outcome"] == "skipped" and not r.get("blocked_by") and r["message"].startswith("applies to")


def _hosts_line(summary: dict[str, Any], hosts: list[dict[str, Any]]) -> str:
    statuses = summary.get("host_statuses") or {}
    if not statuses:  # a report from before host_statuses: count them here
        for h in hosts:
            statuses[h["status"]] = statuses.get(h["status"], 0) + 1
    down = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()) if s != "ok" and n)
    return f"{summary['hosts']} host(s), {statuses.get('ok', 0)} checked" + (f", {down}" if down else "")


def write(report: dict[str, Any], options: Options = DEFAULT) -> str:
    """The console table. ``options.own_exit``: this process exits with the report's code
    (``keystone-checks run``); under the pyinfra CLI it does not (pyinfra exits by its own rules),
    and the header says so instead of claiming an exit code the shell will not see."""
    # Host text never reaches the terminal raw (escape sequences) nor forges a line of the table.
    report = scrub(report, one_line)
    width = max(options.width or shutil.get_terminal_size((100, 20)).columns, 60)
    out: list[str] = []

    def paint(text: str, key: str) -> str:
        code = _COLOURS.get(key)
        return f"\033[{code}m{text}\033[0m" if options.colour and code else text

    def wrapped(text: str, indent: int, first: str = "", more: int | None = None) -> list[str]:
        """``first`` + ``text`` wrapped at the width; continuation lines indented by ``more`` (found
        values are shown whole: the point of a failing line is what was found). A word longer than a
        line (a /dev/disk/by-id path) stays whole, to be copied."""
        pad = " " * indent
        lines = textwrap.wrap(text, width=width, initial_indent=pad + first,
                              subsequent_indent=" " * (indent + 2 if more is None else more),
                              break_long_words=False, break_on_hyphens=False) or [pad + first]
        return lines

    summary = report["summary"]
    code = summary["exit_code"]
    status = (f"status {summary['status'].upper()} (exit {code})" if options.own_exit else
              f"status {summary['status'].upper()} (Nagios code {code} in the report; pyinfra's own exit "
              "code does not follow it: timers, cron and CI use `keystone-checks run`)")
    out.append(f"keystone-checks {report['phase']}: {_hosts_line(summary, report['hosts'])}; {status}")
    reasons = summary.get("unknown_because") or []
    if reasons and summary["status"] == "unknown":
        out.append("unknown because: " + "; ".join(reasons[:5]) + (f"; ... ({len(reasons)} in all)" if len(reasons) > 5 else ""))

    dependency_skips = 0
    for host in report["hosts"]:
        roles = ",".join(host["roles"]) or "?"
        results = sorted(host["results"], key=lambda r: (outcome_rank(r["outcome"]), severity_rank(r["severity"]), r["check"]))
        shown = [r for r in results if options.verbose or not (_dependency_skip(r) or _role_skip(r))]
        if options.quiet:
            shown = [r for r in shown if is_failing(r["outcome"]) or r["outcome"] == "error"]
            if not shown and host["status"] == "ok":
                dependency_skips += sum(map(_dependency_skip, results))
                continue
        out.append("")
        if host["status"] != "ok":
            key = "host-error" if host["status"] == "error" else host["status"]
            out.extend(paint(line, key) for line in wrapped(f"{host['status'].upper()}: {host['error']}", 0,
                                                             f"{host['name']} [{roles}]: ", more=2))
        else:
            out.append(f"{host['name']} [{roles}]")
        for r in shown:
            label = paint(f"{r['outcome']:<10}", r["outcome"])
            head = f"  {label} {r['severity']:<8} {r['check']}"
            if r["outcome"] == "pass":
                out.append(head)
                continue
            # wrap the message after the check id; the label's escape codes take no columns
            plain = f"  {r['outcome']:<10} {r['severity']:<8} {r['check']}: "
            lines = wrapped(r["message"], 0, plain, more=15)
            out.append(head + ": " + lines[0][len(plain):])
            out.extend(lines[1:])
            out.extend(_fix_lines(r, wrapped))
        hidden_dep = sum(map(_dependency_skip, results))
        hidden_role = sum(map(_role_skip, results))
        dependency_skips += hidden_dep
        if not options.verbose and not options.quiet and (hidden_dep or hidden_role):
            parts = []
            if hidden_dep:
                parts.append(f"{hidden_dep} skipped: a dependency did not pass")
            if hidden_role:
                parts.append(f"{hidden_role} not for this role")
            out.append(f"  ({'; '.join(parts)}; -v shows them)")

    out.extend(_rollup(report, paint))
    counts = ", ".join(f"{k} {v}" for k, v in summary["outcomes"].items() if v)
    out.append("")
    out.append(f"totals: {_hosts_line(summary, report['hosts'])}; {counts or 'no checks ran'}")
    if dependency_skips and not options.verbose:
        out.append(f"{dependency_skips} check(s) skipped because a dependency did not pass; --verbose/-v shows them")
    return "\n".join(out) + "\n"


def _fix_lines(r: dict[str, Any], wrapped) -> list[str]:
    """The fix under a failing result: what the run did (queued, ran, refused, the command's error),
    then the catalog's fix with its commands, dry first, and the guide section."""
    out: list[str] = []
    fix = r.get("fix") or {}
    if fix.get("commands") and r["outcome"] in ("would-fix", "fix-failed"):
        out.append(f"             {'queued' if r['outcome'] == 'would-fix' else 'ran'}:")
        out.extend(f"               $ {c}" for c in fix["commands"])
    if fix.get("error"):
        out.extend(wrapped(str(fix["error"]), 13, "fix error: "))
    if fix.get("refused"):
        out.extend(wrapped(str(fix["refused"]), 13, "fix refused: "))
    remedy = r.get("remedy")
    if remedy:
        out.extend(wrapped(remedy["summary"], 13, f"fix ({remedy['risk']}): "))
        if remedy.get("dry"):
            out.append("               dry run first:")
            out.extend(f"               $ {c}" for c in remedy["dry"])
            out.append("               then:")
            out.append(f"               $ {remedy['apply'][0]}")
    guide = r.get("guide") or {}
    if guide.get("section") and (remedy or r["outcome"] == "error"):
        out.extend(wrapped(f"{guide.get('document')} > {guide['section']}", 13, "guide: "))
        link = guide_link(guide)
        if link:
            out.append(f"               {link}")  # whole, so a terminal can open it
    return out


def _rollup(report: dict[str, Any], paint) -> list[str]:
    """What fails across the fleet, by check, worst first: how many hosts, the first names."""
    by_check: dict[str, dict[str, Any]] = {}
    for host in report["hosts"]:
        for r in host["results"]:
            if not (is_failing(r["outcome"]) or r["outcome"] == "error"):
                continue
            entry = by_check.setdefault(r["check"], {"severity": r["severity"], "worst": r["outcome"], "hosts": []})
            entry["hosts"].append(host["name"])
            if outcome_rank(r["outcome"]) < outcome_rank(entry["worst"]):
                entry["worst"] = r["outcome"]
    down = [h["name"] for h in report["hosts"] if h["status"] != "ok"]
    if not by_check and not down:
        return []
    checked = sum(1 for h in report["hosts"] if h["status"] == "ok")
    out = ["", "failing by check (worst first):" if by_check else "failing by check: none"]
    ordered = sorted(by_check.items(), key=lambda kv: (*worst_first(kv[1]["worst"], kv[1]["severity"]),
                                                       -len(kv[1]["hosts"]), kv[0]))
    id_width = min(max((len(c) for c in by_check), default=0), 40)
    for check_id, entry in ordered:
        names = entry["hosts"]
        more = f", ... (+{len(names) - ROLLUP_NAMES})" if len(names) > ROLLUP_NAMES else ""
        label = paint(f"{entry['worst']:<10}", entry["worst"])
        out.append(f"  {label} {entry['severity']:<8} {check_id:<{id_width}}  {len(names)} of {checked} host(s): "
                   f"{', '.join(names[:ROLLUP_NAMES])}{more}")
    if down:
        more = f", ... (+{len(down) - ROLLUP_NAMES})" if len(down) > ROLLUP_NAMES else ""
        out.append(f"  hosts not checked: {len(down)}: {', '.join(down[:ROLLUP_NAMES])}{more}")
    return out
