"""Self-contained HTML report: what is failing (worst first), then the fleet matrix (hosts x checks).

No external assets (inline CSS and one inline script of our own; every host- or catalog-supplied
value is escaped). The page opens on ``#failing``: one entry per failing check, worst first (outcome,
then severity, then how many hosts), with its hosts, fix (risk, summary, commands dry first) and the
guide section as a link to the shipped guide copy; then the hosts that were not checked. The matrix
below has a sticky header and host column and scrolls both ways, so 100 checks x 100 hosts stay
readable; column headers are clipped with the full id and title in a tooltip. Each cell is a
``<details>`` whose panel holds message, expected/found, fix, guide and evidence; the panel closes
with its button or Esc.

DOM contract (tests rely on it): ``#failing`` is the first section, ``li.failing[data-check]`` per
failing check; ``tr.host[data-host]`` per host, ``td.cell[data-check]`` per check with class
``o-<outcome>`` (``o-none`` where the check was not part of that host's run) and ``data-severity``;
skipped cells also ``skip-dependency`` or ``skip-role``. ``report.html#open=HOST/CHECK`` opens one
cell (a link for alerts, and the failing list's host links).
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from ..engine.evaluate import is_failing, outcome_rank, severity_rank, worst_first
from ..engine.remedy import fix_sections, guide_link, with_commands
from . import DEFAULT, Options
from .safe_text import scrub

_COLOURS = {
    "fix-failed": "#7f0000", "fail": "#c62828", "error": "#6a1b9a", "would-fix": "#e65100", "waived": "#00838f",
    "fixed": "#1b5e20", "pass": "#43a047", "skipped": "#9e9e9e", "none": "#eeeeee",
}
# Hosts not checked: a network problem (unreachable, timeout) apart from a host-level error (host data).
_HOST_COLOURS = {"unreachable": "#1565c0", "timeout": "#0277bd", "error": "#ad1457"}
_STATUS_COLOURS = {"ok": "#2e7d32", "warning": "#ef6c00", "critical": "#c62828", "unknown": "#6a1b9a"}
_SYMBOL = {"pass": "✓", "fixed": "✓", "error": "?", "skipped": "·", "waived": "w"}
_SEVERITY_LETTER = {"critical": "C", "warning": "W", "info": "I"}
FAILING_HOSTS_SHOWN = 12  # host links per failing check; the rest are counted


def _css() -> str:
    outcome_rules = "\n".join(f".o-{k} > details > summary, .o-{k}.badge {{ background: {v}; color: #fff; }}"
                              for k, v in _COLOURS.items())
    host_rules = "\n".join(f".h-{k} {{ background: {v}; color: #fff; }}\n"
                           f".matrix tr.h-row-{k} th.hostname {{ box-shadow: inset 5px 0 0 {v}; color: {v}; }}"
                           for k, v in _HOST_COLOURS.items())
    return f"""
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1em 1.5em; color: #222; }}
h1 {{ font-size: 1.4em; margin: 0 0 .3em; }}
h2 {{ font-size: 1.15em; margin: 1em 0 .4em; }}
code, pre, .mono {{ font-family: ui-monospace, monospace; }}
.status {{ display: inline-block; padding: .1em .6em; border-radius: 3px; color: #fff; font-weight: bold; }}
.badge {{ display: inline-block; padding: 0 .45em; border-radius: 3px; font-size: 12px; white-space: nowrap; }}
.sev {{ display: inline-block; min-width: 4.5em; font-size: 12px; font-weight: bold; }}
.sev.sev-critical {{ color: #b71c1c; }} .sev.sev-warning {{ color: #e65100; }} .sev.sev-info {{ color: #546e7a; }}
#failing ol {{ padding-left: 1.6em; margin: .3em 0; }}
#failing li.failing {{ margin: .35em 0; }}
#failing .hosts a {{ margin-right: .5em; white-space: nowrap; }}
nav.jump a {{ margin-right: 1em; }}
#failing .fixline {{ color: #333; font-size: 13px; }}
#failing .none {{ color: #2e7d32; }}
pre.cmd {{ background: #f5f5f5; padding: .3em .5em; margin: .2em 0; white-space: pre-wrap; word-break: break-all;
  font-size: 12px; }}
.legend span {{ margin-right: .35em; }}
.scroll {{ overflow: auto; max-width: 100%; max-height: 85vh; border: 1px solid #ccc; margin-top: .5em; }}
table.matrix {{ border-collapse: separate; border-spacing: 0; }}
.matrix th, .matrix td {{ border-right: 1px solid #ddd; border-bottom: 1px solid #ddd; padding: 0; vertical-align: middle; }}
.matrix thead th {{ position: sticky; top: 0; z-index: 2; background: #fff; vertical-align: bottom;
  font-weight: normal; padding: .3em 0; }}
.matrix thead th.col span {{ display: inline-block; writing-mode: vertical-rl; transform: rotate(180deg);
  max-height: 13em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  font-family: ui-monospace, monospace; font-size: 11px; }}
.matrix thead th.col {{ border-bottom: 3px solid #bbb; }}
.matrix thead th.col.sev-critical {{ border-bottom-color: #b71c1c; }}
.matrix thead th.col.sev-warning {{ border-bottom-color: #ef6c00; }}
.matrix th.hostname {{ position: sticky; left: 0; z-index: 1; background: #fff; text-align: left;
  padding: .15em .5em .15em .7em; white-space: nowrap; font-size: 12px; max-width: 18em; overflow: hidden; text-overflow: ellipsis; }}
.matrix thead th.corner {{ left: 0; z-index: 3; text-align: left; vertical-align: bottom; font-size: 12px; }}
.matrix td summary {{ cursor: pointer; list-style: none; width: 1.9em; line-height: 1.7em; text-align: center;
  font-size: 11px; font-weight: bold; }}
.matrix td summary::-webkit-details-marker {{ display: none; }}
.matrix td.o-none {{ background: {_COLOURS['none']}; }}
.matrix td.skip-role > details > summary {{ background: #e0e0e0; color: #9e9e9e; }}
.matrix td.skip-dependency > details > summary {{
  background: repeating-linear-gradient(45deg, #9e9e9e 0 3px, #bdbdbd 3px 6px); color: #111; }}
.matrix td[data-severity="critical"].failing > details > summary {{ box-shadow: inset 0 0 0 2px #000; }}
.matrix tr.down th.hostname {{ font-weight: bold; }}
.matrix tr.down td.cell {{ background: repeating-linear-gradient(45deg, #fff 0 4px, #eceff1 4px 8px); }}
.detail {{ position: fixed; z-index: 5; top: 1em; right: 1em; width: min(46em, 60vw); max-height: calc(100vh - 2em);
  overflow: auto; background: #fff; border: 1px solid #888; box-shadow: 0 2px 12px #0006; padding: .6em .8em;
  font-size: 13px; text-align: left; font-weight: normal; }}
.detail .close {{ float: right; font-size: 16px; line-height: 1; padding: .2em .5em; cursor: pointer; }}
.detail pre {{ background: #f5f5f5; padding: .4em; overflow: auto; max-height: 20em; white-space: pre-wrap; }}
.detail dt {{ font-weight: bold; margin-top: .3em; }}
.hosterr {{ padding: .1em .6em; font-size: 12px; }}
{outcome_rules}
{host_rules}
"""


# Our own script (no value of the report in it): deep link #open=HOST/CHECK, one panel open at a
# time, the close button and Esc close it. The panel is fixed in the viewport, so opening one needs
# no scrolling (its title names host and check).
_SCRIPT = """(function(){
function closeAll(except){document.querySelectorAll('td.cell details[open]').forEach(function(d){if(d!==except){d.open=false;}});}
function openFromHash(){var m=/^#open=([^/]*)\\/(.*)$/.exec(decodeURIComponent(location.hash));if(!m)return;
document.querySelectorAll('tr.host').forEach(function(tr){if(tr.dataset.host!==m[1])return;
tr.querySelectorAll('td.cell').forEach(function(td){if(td.dataset.check===m[2]){var d=td.querySelector('details');
if(d){closeAll(d);d.open=true;}}});});}
document.addEventListener('toggle',function(e){if(e.target.open&&e.target.closest&&e.target.closest('td.cell')){closeAll(e.target);}},true);
document.addEventListener('click',function(e){var b=e.target.closest&&e.target.closest('button.close');
if(b){var d=b.closest('details');if(d){d.open=false;}e.preventDefault();}});
document.addEventListener('keydown',function(e){if(e.key==='Escape'){closeAll(null);}});
window.addEventListener('hashchange',openFromHash);openFromHash();
})();"""


def _guide_html(guide: dict[str, Any]) -> str:
    if not guide:
        return ""
    text = " &gt; ".join(escape(str(guide[k])) for k in ("document", "section", "cause") if guide.get(k))
    link = guide_link(guide)
    return f'<a class="guide" href="{escape(link)}">{text}</a>' if link else text


def _remedy_html(r: dict[str, Any]) -> str:
    def commands(lines: list[str]) -> str:
        return escape("\n".join(f"$ {c}" for c in lines))

    parts = []
    for kind, label, text, cmds in fix_sections(r):
        parts.append(f"<dt>{escape(label)}</dt>")
        if kind == "ran":
            parts.append(f'<dd><pre class="cmd">{commands(cmds["ran"])}</pre></dd>')
        elif kind == "error":
            parts.append(f'<dd><pre class="fix-error">{escape(text)}</pre></dd>')
        else:
            parts.append(f'<dd class="fix">{escape(text)}')
            if cmds.get("dry"):
                parts.append(f'<div>dry run first:</div><pre class="cmd dry">{commands(cmds["dry"])}</pre>'
                             f'<div>then:</div><pre class="cmd apply">{commands(cmds["apply"])}</pre>')
            parts.append("</dd>")
    return "".join(parts)


def _detail(host: str, r: dict[str, Any]) -> str:
    parts = ['<button type="button" class="close" title="close (Esc)" aria-label="close">×</button>',
             f"<strong>{escape(r['check'])}</strong> on <strong>{escape(host)}</strong>: {escape(r['title'])}",
             "<dl>", f"<dt>outcome</dt><dd>{escape(r['outcome'])} ({escape(r['severity'])})</dd>",
             f"<dt>message</dt><dd>{escape(r['message'])}</dd>"]
    if r.get("expected"):
        parts.append("<dt>expected</dt><dd><ul>" + "".join(f"<li>{escape(e)}</li>" for e in r["expected"]) + "</ul></dd>")
    if r.get("found"):
        parts.append("<dt>found</dt><dd><ul>" + "".join(f"<li>{escape(f)}</li>" for f in r["found"]) + "</ul></dd>")
    parts.append(_remedy_html(r))
    if r.get("guide"):
        parts.append(f"<dt>guide</dt><dd class=\"guide\">{_guide_html(r['guide'])}</dd>")
    if r.get("evidence"):
        evidence = json.dumps(r["evidence"], indent=2, sort_keys=True, default=str)
        parts.append(f"<dt>evidence</dt><dd><pre class=\"evidence\">{escape(evidence)}</pre></dd>")
    parts.append("</dl>")
    return "".join(parts)


def _skip_kind(r: dict[str, Any]) -> str:
    if r["outcome"] != "skipped":
        return ""
    if r.get("blocked_by"):
        return "skip-dependency"
    return "skip-role" if r["message"].startswith("applies to") else "skip-other"


def _cell_text(r: dict[str, Any]) -> str:
    if is_failing(r["outcome"]):
        return _SEVERITY_LETTER.get(r["severity"], "!") + ("!" if r["outcome"] == "fix-failed" else "")
    if r["outcome"] == "skipped":
        return "↷" if r.get("blocked_by") else "–" if r["message"].startswith("applies to") else "·"
    return _SYMBOL.get(r["outcome"], r["outcome"][:1])


def _failing_section(report: dict[str, Any]) -> list[str]:
    by_check: dict[str, dict[str, Any]] = {}
    for host in report["hosts"]:
        for r in host["results"]:
            if not (is_failing(r["outcome"]) or r["outcome"] == "error"):
                continue
            entry = by_check.setdefault(r["check"], {"r": r, "worst": r["outcome"], "hosts": []})
            entry["hosts"].append(host["name"])
            if outcome_rank(r["outcome"]) < outcome_rank(entry["worst"]):
                entry["worst"], entry["r"] = r["outcome"], r
    checked = sum(1 for h in report["hosts"] if h["status"] == "ok")
    out = ['<section id="failing"><h2>What is failing, worst first</h2>']
    if not by_check:
        out.append('<p class="none">No check fails and none is in error.</p>')
    else:
        out.append("<ol>")
        ordered = sorted(by_check.items(), key=lambda kv: (*worst_first(kv[1]["worst"], kv[1]["r"]["severity"]),
                                                           -len(kv[1]["hosts"]), kv[0]))
        for check_id, entry in ordered:
            r, names = entry["r"], entry["hosts"]
            links = " ".join(f'<a href="#open={escape(_hash(n))}/{escape(_hash(check_id))}">{escape(n)}</a>'
                            for n in names[:FAILING_HOSTS_SHOWN])
            more = f" … and {len(names) - FAILING_HOSTS_SHOWN} more" if len(names) > FAILING_HOSTS_SHOWN else ""
            remedy = r.get("remedy")
            if remedy and remedy.get("dry"):  # one command for every host this check fails on (--limit a,b,...)
                remedy = with_commands(remedy, report["phase"], ",".join(names), report.get("inventory"))
            fixline = ""
            if remedy:
                fixline = f'<div class="fixline">fix ({escape(remedy["risk"])}): {escape(remedy["summary"])}'
                if remedy.get("dry"):
                    fixline += " — dry run first: <code>" + escape(remedy["dry"][0]) + "</code>"
                fixline += "</div>"
            guide = _guide_html(r.get("guide") or {})
            out.append(
                f'<li class="failing" data-check="{escape(check_id)}" data-outcome="{escape(entry["worst"])}" '
                f'data-severity="{escape(r["severity"])}">'
                f'<span class="o-{escape(entry["worst"])} badge">{escape(entry["worst"])}</span> '
                f'<span class="sev sev-{escape(r["severity"])}">{escape(r["severity"])}</span> '
                f'<strong class="mono">{escape(check_id)}</strong> {escape(r["title"])} — '
                f'<strong>{len(names)} of {checked} host(s)</strong>: <span class="hosts">{links}</span>{escape(more)}'
                f"{fixline}" + (f'<div class="guideline">guide: {guide}</div>' if guide else "") + "</li>")
        out.append("</ol>")
    down = [h for h in report["hosts"] if h["status"] != "ok"]
    if down:
        out.append(f"<h2 id=\"down\">Hosts not checked ({len(down)})</h2><ul class=\"down\">")
        for h in down:
            explained = f" (see check {h['explained_by']})" if h.get("explained_by") else ""
            out.append(f'<li data-host="{escape(h["name"])}"><span class="badge h-{escape(h["status"])}">{escape(h["status"])}</span> '
                       f'<strong>{escape(h["name"])}</strong>: {escape(h.get("error") or "")}{escape(explained)}</li>')
        out.append("</ul>")
    out.append("</section>")
    return out


def _hash(text: str) -> str:
    """A fragment component the deep-link script decodes back (decodeURIComponent)."""
    from urllib.parse import quote

    return quote(text, safe="")


def write(report: dict[str, Any], options: Options = DEFAULT) -> str:
    report = scrub(report)  # html.escape leaves control characters as they are
    hosts = report["hosts"]
    checks: dict[str, dict[str, Any]] = {}
    worst: dict[str, int] = {}
    for host in hosts:
        for r in host["results"]:
            checks.setdefault(r["check"], {"title": r["title"], "severity": r["severity"]})
            worst[r["check"]] = min(worst.get(r["check"], 99), outcome_rank(r["outcome"]))
    # columns: checks failing or in error on any host first (what needs attention is on the left),
    # in the failing list's order, then the others by severity
    problem = outcome_rank("would-fix")
    check_ids = sorted(checks, key=lambda c: (worst[c] > problem, severity_rank(checks[c]["severity"]), worst[c], c))
    summary = report["summary"]
    status = summary["status"]
    counts = ", ".join(f"{k} {v}" for k, v in summary["outcomes"].items() if v) or "no checks ran"
    statuses = summary.get("host_statuses") or {}
    host_counts = ", ".join(f'<span class="badge h-{escape(s)}">{n} {escape(s)}</span>'
                            for s, n in sorted(statuses.items()) if s != "ok" and n)
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>keystone-checks {escape(report['phase'])}: {escape(status.upper())}</title>",
        f"<style>{_css()}</style></head><body>",
        f"<h1>keystone-checks <code>{escape(report['phase'])}</code> "
        f'<span class="status" id="status" style="background:{_STATUS_COLOURS.get(status, "#555")}">'
        f"{escape(status.upper())} (exit {summary['exit_code']})</span></h1>",
        f"<p>{summary['hosts']} host(s): {statuses.get('ok', summary['hosts'])} checked"
        f"{' ' + host_counts if host_counts else ''}; {escape(counts)}. "
        f"Started {escape(report['started_at'])}, {report['duration_s']} s{' (dry run)' if report.get('dry_run') else ''}.</p>",
    ]
    failing_count = sum(1 for c in check_ids if worst[c] <= problem)
    down_count = sum(1 for h in hosts if h["status"] != "ok")
    out.append(f'<nav class="jump"><a href="#failing">What is failing or in error ({failing_count} check(s))</a>'
               + (f'<a href="#down">Hosts not checked ({down_count})</a>' if down_count else "")
               + '<a href="#matrix-section">All hosts × checks</a></nav>')
    out += _failing_section(report)
    legend = "".join(f'<span class="o-{k} badge">{k}</span>' for k in _COLOURS if k not in ("none", "skipped"))
    legend += ('<span class="badge" style="background:repeating-linear-gradient(45deg,#9e9e9e 0 3px,#bdbdbd 3px 6px);color:#111">'
               "↷ skipped: a dependency did not pass</span>"
               '<span class="badge" style="background:#e0e0e0;color:#757575">– not for this role</span>'
               + "".join(f'<span class="badge h-{k}">host {k}</span>' for k in _HOST_COLOURS))
    out += [
        '<section id="matrix-section"><h2>All hosts × checks</h2>',
        f'<p class="legend">{legend}<br><small>Failing cells show the severity (C critical, W warning, I info; '
        "C! a fix that failed); click a cell for message, expected/found, fix, guide and evidence "
        "(Esc or × closes it). Hover a column header for the check's id and title.</small></p>",
        '<div class="scroll"><table class="matrix" id="matrix"><thead><tr><th class="corner hostname">host \\ check</th>',
    ]
    for check_id in check_ids:
        sev = checks[check_id]["severity"]
        out.append(f'<th scope="col" class="col sev-{escape(sev)}" data-check="{escape(check_id)}" '
                   f'title="{escape(check_id)} ({escape(sev)}): {escape(checks[check_id]["title"])}">'
                   f"<span>{escape(check_id)}</span></th>")
    out.append("</tr></thead><tbody>")
    for host in hosts:
        by_check = {r["check"]: r for r in host["results"]}
        down = host["status"] != "ok"
        row_class = "host" + (f" down h-row-{escape(host['status'])}" if down else "")
        roles = ",".join(host.get("roles") or [])
        out.append(f'<tr class="{row_class}" data-host="{escape(host["name"])}" data-status="{escape(host["status"])}">'
                   f'<th scope="row" class="hostname" title="{escape(host["name"])} [{escape(roles)}]">'
                   f'{escape(host["name"])} <small>{escape(host["status"]) if down else escape(roles)}</small></th>')
        for check_id in check_ids:
            r = by_check.get(check_id)
            if r is None:
                out.append(f'<td class="cell o-none" data-check="{escape(check_id)}"></td>')
                continue
            classes = f"cell o-{escape(r['outcome'])} {_skip_kind(r)}" + (" failing" if is_failing(r["outcome"]) else "")
            tip = f"{check_id} on {host['name']}: {r['outcome']} ({r['severity']}): {r['message'][:200]}"
            out.append(f'<td class="{classes.strip()}" data-check="{escape(check_id)}" data-outcome="{escape(r["outcome"])}" '
                       f'data-severity="{escape(r["severity"])}">'
                       f'<details><summary title="{escape(tip)}">{escape(_cell_text(r))}</summary>'
                       f'<div class="detail">{_detail(host["name"], r)}</div></details></td>')
        out.append("</tr>")
        if down:
            explained = f" (see check {host['explained_by']})" if host.get("explained_by") else ""
            out.append(f'<tr class="hosterr-row"><td class="hosterr" colspan="{len(check_ids) + 1}">'
                       f'<span class="badge h-{escape(host["status"])}">{escape(host["status"])}</span> '
                       f"{escape(host['name'])}: {escape(host['error'] or '')}{escape(explained)}</td></tr>")
    out.append("</tbody></table></div></section>")
    out.append(f"<script>{_SCRIPT}</script>")
    out.append(f"<p><small>{escape(report['tool']['name'])} {escape(report['tool']['version'])}, "
               f"report schema {escape(report['schema'])}</small></p></body></html>")
    return "\n".join(out) + "\n"
