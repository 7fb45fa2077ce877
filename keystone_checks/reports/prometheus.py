"""Prometheus text exposition for node_exporter's textfile collector.

One gauge sample per host x check with the *current* outcome as a label and value 1 (alerting:
``keystone_check_outcome{outcome=~"fail|error"} == 1``), one ``keystone_check_info`` sample per check
(title, severity and guide section, for alert text: joined ``on(instance, job, check)``), plus per-run
gauges, and one ``keystone_check_fix_info`` sample per host x failing check: the fix's risk and summary,
the command that shows it (dry run) and a failed fix's error, for alert text (joined ``on(instance, job,
host, check)``; it exists only while the check fails). Written atomically by ``write_reports`` (node_exporter
must never read half a file). The alerting
rules and dashboard built on these series: deploy/prometheus/, deploy/grafana/.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..engine.evaluate import is_failing
from . import DEFAULT, Options
from .safe_text import visible

LABEL_TEXT = 300  # label values are kept short: alert text, not a log


def _label(value: Any) -> str:
    return visible(str(value)).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def write(report: dict[str, Any], options: Options = DEFAULT) -> str:
    phase = _label(report["phase"])
    out = [
        "# HELP keystone_check_outcome Current outcome of a keystone check on a host (1 for the current outcome).",
        "# TYPE keystone_check_outcome gauge",
    ]
    for host in report["hosts"]:
        for r in host["results"]:
            out.append(f'keystone_check_outcome{{host="{_label(host["name"])}",check="{_label(r["check"])}",'
                       f'severity="{_label(r["severity"])}",outcome="{_label(r["outcome"])}",phase="{phase}"}} 1')
    out += [
        "# HELP keystone_check_info Catalog data of each check in the run (always 1): title, severity, guide section.",
        "# TYPE keystone_check_info gauge",
    ]
    # One sample per check id, not per host: titles are the catalog's, the same on every host.
    seen: set[str] = set()
    for host in report["hosts"]:
        for r in host["results"]:
            if r["check"] in seen:
                continue
            seen.add(r["check"])
            guide = r.get("guide") or {}
            out.append(f'keystone_check_info{{check="{_label(r["check"])}",title="{_label(r["title"])}",'
                       f'severity="{_label(r["severity"])}",guide_document="{_label(guide.get("document", ""))}",'
                       f'guide_section="{_label(guide.get("section", ""))}",phase="{phase}"}} 1')
    out += [
        "# HELP keystone_check_fix_info How to fix a failing check on a host (always 1, only while it fails): "
        "risk (safe, disruptive, destructive, manual, none), summary, the dry-run command, a failed fix's error.",
        "# TYPE keystone_check_fix_info gauge",
    ]
    for host in report["hosts"]:
        for r in host["results"]:
            if not is_failing(r["outcome"]) or not r.get("remedy"):
                continue
            remedy = r["remedy"]
            error = str((r.get("fix") or {}).get("error") or "")
            out.append(f'keystone_check_fix_info{{host="{_label(host["name"])}",check="{_label(r["check"])}",'
                       f'risk="{_label(remedy["risk"])}",summary="{_label(remedy["summary"][:LABEL_TEXT])}",'
                       f'dry_command="{_label((remedy.get("dry") or [""])[0])}",'
                       f'fix_error="{_label(error[:LABEL_TEXT])}",phase="{phase}"}} 1')
    out += [
        "# HELP keystone_checks_host_up Whether the sweep reached the host and ran its checks (0: unreachable or error).",
        "# TYPE keystone_checks_host_up gauge",
    ]
    for host in report["hosts"]:
        out.append(f'keystone_checks_host_up{{host="{_label(host["name"])}",status="{_label(host["status"])}",phase="{phase}"}} '
                   f'{1 if host["status"] == "ok" else 0}')
    finished = datetime.fromisoformat(report["finished_at"]).timestamp()
    unreachable = sum(1 for h in report["hosts"] if h["status"] == "unreachable")
    out += [
        "# HELP keystone_checks_sweep_duration_seconds Wall-clock duration of the last run.",
        "# TYPE keystone_checks_sweep_duration_seconds gauge",
        f'keystone_checks_sweep_duration_seconds{{phase="{phase}"}} {float(report["duration_s"])}',
        "# HELP keystone_checks_last_run_timestamp_seconds Unix time the last run finished.",
        "# TYPE keystone_checks_last_run_timestamp_seconds gauge",
        f'keystone_checks_last_run_timestamp_seconds{{phase="{phase}"}} {finished}',
        "# HELP keystone_checks_hosts_unreachable Hosts the last run could not reach.",
        "# TYPE keystone_checks_hosts_unreachable gauge",
        f'keystone_checks_hosts_unreachable{{phase="{phase}"}} {unreachable}',
        "# HELP keystone_checks_exit_code Nagios-convention status of the last run (0 ok, 1 warning, 2 critical, 3 unknown).",
        "# TYPE keystone_checks_exit_code gauge",
        f'keystone_checks_exit_code{{phase="{phase}"}} {report["summary"]["exit_code"]}',
    ]
    return "\n".join(out) + "\n"
