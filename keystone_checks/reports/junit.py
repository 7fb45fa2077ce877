"""JUnit XML (the Jenkins/ant dialect CI systems read): a testcase per host x check.

classname = host, name = check id; failing (fail/fix-failed/would-fix) -> <failure>, error -> <error>,
skipped and waived -> <skipped> (a waived one's message starts "waived:"); an unreachable host is one
<error> testcase named ``(connect)``. A failure's
text holds expected/found, the fix with its commands (dry first) and the guide section.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from ..engine.evaluate import is_failing
from ..engine.remedy import text_lines
from . import DEFAULT, Options
from .safe_text import scrub, xml_text


def _text(r: dict[str, Any]) -> str:
    lines = [r["message"]]
    lines += [f"expected: {e}" for e in r.get("expected", [])]
    lines += [f"found:    {f}" for f in r.get("found", [])]
    lines += text_lines(r)
    if r.get("evidence"):
        lines.append("evidence: " + json.dumps(r["evidence"], default=str, sort_keys=True)[:4000])
    return "\n".join(lines)


def write(report: dict[str, Any], options: Options = DEFAULT) -> str:
    report = scrub(report, xml_text)  # ElementTree writes control characters raw: invalid XML 1.0
    suites = ET.Element("testsuites", name=f"keystone-checks {report['phase']}")
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for host in report["hosts"]:
        suite = ET.SubElement(suites, "testsuite", name=host["name"], timestamp=report["started_at"][:19],
                              hostname=host["name"])
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        if host["status"] != "ok":
            case = ET.SubElement(suite, "testcase", classname=host["name"], name="(connect)", time="0")
            error = ET.SubElement(case, "error", message=f"host {host['status']}: {host['error']}", type=host["status"])
            error.text = host["error"] or ""
            counts["tests"] += 1
            counts["errors"] += 1
        for r in host["results"]:
            case = ET.SubElement(suite, "testcase", classname=host["name"], name=r["check"],
                                 time=f"{r.get('duration_ms', 0) / 1000:.6f}")
            counts["tests"] += 1
            outcome = r["outcome"]
            if is_failing(outcome):
                node = ET.SubElement(case, "failure", message=r["message"][:500], type=f"{r['severity']}:{outcome}")
                node.text = _text(r)
                counts["failures"] += 1
            elif outcome == "error":
                node = ET.SubElement(case, "error", message=r["message"][:500], type="error")
                node.text = _text(r)
                counts["errors"] += 1
            elif outcome in ("skipped", "waived"):
                # A waived failure is accepted, not passed: CI shows it as skipped with the waiver's reason.
                ET.SubElement(case, "skipped", message=(f"waived: {r['message']}" if outcome == "waived" else r["message"])[:500])
                counts["skipped"] += 1
            elif outcome == "fixed":
                ET.SubElement(case, "system-out").text = r["message"]
        for key, value in counts.items():
            suite.set(key, str(value))
            total[key] += value
        suite.set("time", f"{host.get('duration_s', 0):.4f}")
    for key, value in total.items():
        suites.set(key, str(value))
    suites.set("time", str(report["duration_s"]))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
