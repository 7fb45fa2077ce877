"""Self-contained HTML report: a fleet matrix (hosts x checks) coloured by outcome.

No external assets (inline CSS, no script needed): every cell is a ``<details>`` whose
``<summary>`` is the outcome; opening it shows message, expected/found, evidence (JSON), the fix
(commands or manual text) and the guide section. Works offline, from a file:// URL or an e-mail.
DOM contract (tests rely on it): ``tr.host[data-host]`` per host, ``td.cell[data-check]`` per check
with class ``o-<outcome>`` (``o-none`` where the check was not part of that host's run).
``report.html#open=HOST/CHECK`` opens one cell (a link for alerts); the rest works without script.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from .safe_text import scrub

_COLOURS = {
    "pass": "#2e7d32", "fixed": "#1b5e20", "fail": "#c62828", "fix-failed": "#8e0000", "would-fix": "#ef6c00",
    "error": "#6a1b9a", "skipped": "#9e9e9e", "none": "#eeeeee", "unreachable": "#6a1b9a",
}
_STATUS_COLOURS = {"ok": "#2e7d32", "warning": "#ef6c00", "critical": "#c62828", "unknown": "#6a1b9a"}


def _css() -> str:
    rules = "\n".join(f".o-{k} summary, .o-{k}.badge {{ background: {v}; color: #fff; }}" for k, v in _COLOURS.items())
    return f"""
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.4em; margin: 0 0 .3em; }}
.status {{ display: inline-block; padding: .1em .6em; border-radius: 3px; color: #fff; font-weight: bold; }}
table.matrix {{ border-collapse: collapse; margin-top: 1em; }}
.matrix th, .matrix td {{ border: 1px solid #ccc; padding: 0; vertical-align: top; }}
.scroll {{ overflow-x: auto; max-width: 100%; }}
.matrix thead th {{ writing-mode: vertical-rl; padding: .4em .2em; font-weight: normal; vertical-align: bottom;
  font-family: ui-monospace, monospace; font-size: 12px; white-space: nowrap; }}
.matrix th.hostname {{ position: sticky; left: 0; background: #fff; z-index: 1; }}
.matrix th.hostname {{ text-align: left; padding: .3em .6em; white-space: nowrap; }}
.matrix td summary {{ cursor: pointer; list-style: none; padding: .3em .4em; min-width: 3.5em; text-align: center;
  font-size: 12px; }}
.matrix td summary::-webkit-details-marker {{ display: none; }}
.matrix td.o-none {{ background: {_COLOURS['none']}; }}
.detail {{ position: fixed; z-index: 3; top: 1em; right: 1em; width: min(46em, 60vw); max-height: calc(100vh - 2em);
  overflow: auto; background: #fff; border: 1px solid #888; box-shadow: 0 2px 12px #0006; padding: .6em .8em;
  font-size: 13px; text-align: left; }}
.detail pre {{ background: #f5f5f5; padding: .4em; overflow: auto; max-height: 20em; white-space: pre-wrap; }}
.detail dt {{ font-weight: bold; margin-top: .3em; }}
.unreachable-row th.hostname {{ color: {_COLOURS['unreachable']}; }}
.hosterr {{ padding: .3em .6em; color: {_COLOURS['unreachable']}; }}
.legend span {{ margin-right: .4em; padding: .1em .5em; border-radius: 3px; font-size: 12px; }}
{rules}
"""


def _detail(host: str, r: dict[str, Any]) -> str:
    guide = r.get("guide") or {}
    fix = r.get("fix") or {}
    parts = [f"<strong>{escape(r['check'])}</strong> on <strong>{escape(host)}</strong>: {escape(r['title'])}",
             "<dl>", f"<dt>outcome</dt><dd>{escape(r['outcome'])} ({escape(r['severity'])})</dd>",
             f"<dt>message</dt><dd>{escape(r['message'])}</dd>"]
    if r.get("expected"):
        parts.append("<dt>expected</dt><dd><ul>" + "".join(f"<li>{escape(e)}</li>" for e in r["expected"]) + "</ul></dd>")
    if r.get("found"):
        parts.append("<dt>found</dt><dd><ul>" + "".join(f"<li>{escape(f)}</li>" for f in r["found"]) + "</ul></dd>")
    if fix.get("commands"):
        parts.append("<dt>fix" + (f" ({escape(str(fix.get('risk')))})" if fix.get("risk") else "") + "</dt><dd><pre class=\"fix\">"
                     + escape("\n".join(f"$ {c}" for c in fix["commands"])) + "</pre></dd>")
    elif fix.get("manual"):
        parts.append(f"<dt>fix (manual)</dt><dd class=\"fix\">{escape(fix['manual'])}</dd>")
    elif fix.get("refused"):
        parts.append(f"<dt>fix refused</dt><dd class=\"fix\">{escape(fix['refused'])}</dd>")
    if guide:
        section = " &gt; ".join(escape(str(guide[k])) for k in ("document", "section", "cause") if guide.get(k))
        parts.append(f"<dt>guide</dt><dd class=\"guide\">{section}</dd>")
    if r.get("evidence"):
        evidence = json.dumps(r["evidence"], indent=2, sort_keys=True, default=str)
        parts.append(f"<dt>evidence</dt><dd><pre class=\"evidence\">{escape(evidence)}</pre></dd>")
    parts.append("</dl>")
    return "".join(parts)


def write(report: dict[str, Any]) -> str:
    report = scrub(report)  # html.escape leaves control characters as they are
    hosts = report["hosts"]
    checks: dict[str, dict[str, Any]] = {}
    for host in hosts:
        for r in host["results"]:
            checks.setdefault(r["check"], {"title": r["title"], "severity": r["severity"]})
    # columns: worst outcome on any host first (what needs attention is on the left), then severity
    rank = {"fail": 0, "fix-failed": 0, "error": 1, "would-fix": 2, "fixed": 3, "pass": 4, "skipped": 5}
    worst: dict[str, int] = {}
    for host in hosts:
        for r in host["results"]:
            worst[r["check"]] = min(worst.get(r["check"], 9), rank.get(r["outcome"], 9))
    check_ids = sorted(checks, key=lambda c: (worst[c], {"critical": 0, "warning": 1}.get(checks[c]["severity"], 2), c))
    summary = report["summary"]
    status = summary["status"]
    counts = ", ".join(f"{k} {v}" for k, v in summary["outcomes"].items() if v) or "no checks ran"
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>keystone-checks {escape(report['phase'])}: {escape(status.upper())}</title>",
        f"<style>{_css()}</style></head><body>",
        f"<h1>keystone-checks <code>{escape(report['phase'])}</code> "
        f'<span class="status" id="status" style="background:{_STATUS_COLOURS.get(status, "#555")}">'
        f"{escape(status.upper())} (exit {summary['exit_code']})</span></h1>",
        f"<p>{summary['hosts']} host(s); {escape(counts)}. Started {escape(report['started_at'])}, "
        f"{report['duration_s']} s{' (dry run)' if report.get('dry_run') else ''}. "
        f"Click a cell for message, expected/found, fix, guide section and evidence.</p>",
        '<p class="legend">' + "".join(f'<span class="o-{k} badge">{k}</span>' for k in _COLOURS if k != "none") + "</p>",
        '<div class="scroll"><table class="matrix" id="matrix"><thead><tr><th class="corner hostname"></th>',
    ]
    for check_id in check_ids:
        out.append(f'<th scope="col" data-check="{escape(check_id)}" title="{escape(checks[check_id]["title"])}">'
                   f"{escape(check_id)}</th>")
    out.append("</tr></thead><tbody>")
    for host in hosts:
        by_check = {r["check"]: r for r in host["results"]}
        row_class = "host" + (" unreachable-row" if host["status"] != "ok" else "")
        roles = ",".join(host.get("roles") or [])
        out.append(f'<tr class="{row_class}" data-host="{escape(host["name"])}" data-status="{escape(host["status"])}">'
                   f'<th scope="row" class="hostname">{escape(host["name"])} <small>{escape(roles)}</small></th>')
        if host["status"] != "ok" and not by_check:
            explained = f" (see check {host['explained_by']})" if host.get("explained_by") else ""
            for check_id in check_ids:
                out.append(f'<td class="cell o-none" data-check="{escape(check_id)}"></td>')
            out.append("</tr>")
            out.append(f'<tr class="hosterr-row"><td class="hosterr" colspan="{len(check_ids) + 1}">'
                       f"{escape(host['name'])}: {escape(host['status'])}: {escape(host['error'] or '')}{escape(explained)}</td></tr>")
            continue
        for check_id in check_ids:
            r = by_check.get(check_id)
            if r is None:
                out.append(f'<td class="cell o-none" data-check="{escape(check_id)}"></td>')
                continue
            out.append(f'<td class="cell o-{escape(r["outcome"])}" data-check="{escape(check_id)}" data-outcome="{escape(r["outcome"])}">'
                       f'<details><summary title="{escape(r["message"][:200])}">{escape(r["outcome"])}</summary>'
                       f'<div class="detail">{_detail(host["name"], r)}</div></details></td>')
        out.append("</tr>")
        if host["status"] != "ok":
            out.append(f'<tr class="hosterr-row"><td class="hosterr" colspan="{len(check_ids) + 1}">'
                       f"{escape(host['name'])}: {escape(host['status'])}: {escape(host['error'] or '')}</td></tr>")
    out.append("</tbody></table></div>")
    # Deep link to one cell (alerts, chat): report.html#open=HOST/CHECK opens that cell's details.
    out.append("<script>(function(){var m=/^#open=([^/]*)\\/(.*)$/.exec(decodeURIComponent(location.hash));"
               "if(!m)return;document.querySelectorAll('tr.host').forEach(function(tr){"
               "if(tr.dataset.host!==m[1])return;tr.querySelectorAll('td.cell').forEach(function(td){"
               "if(td.dataset.check===m[2]){var d=td.querySelector('details');if(d){d.open=true;}}});});"
               "})();</script>")
    out.append(f"<p><small>{escape(report['tool']['name'])} {escape(report['tool']['version'])}, "
               f"report schema {escape(report['schema'])}</small></p></body></html>")
    return "\n".join(out) + "\n"
