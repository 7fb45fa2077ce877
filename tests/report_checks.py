"""Format-generic validation of written reports, shared by tests/test_reports.py (a sweep of @local)
and tests/lab/test_lab_reports.py (one sweep of real lab guests).

Each ``check_*`` takes the report dict (the JSON report of the same run) and one format's text, and
validates that text with the format's own consumer: JSON Schema, a JUnit XSD (xmlschema),
prometheus_client's parser, the Nagios plugin line format, and a real headless Chromium for the HTML
matrix. Nothing here knows which hosts or checks the run had: run-specific assertions stay in the tests.

A plain module (not conftest.py) imported by name, like kc_helpers.py: tests/ is on sys.path.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from kc_helpers import REPO

JUNIT_XSD = Path(__file__).parent / "fixtures" / "junit" / "junit.xsd"
SCHEMA = json.loads((REPO / "keystone_checks" / "schema" / "report.schema.json").read_text())

# Outcomes the writers render as a failure (JUnit <failure>, Nagios critical/warning count).
FAILING = ("fail", "fix-failed", "would-fix")
_JUNIT_KIND = {"fail": ["failure"], "fix-failed": ["failure"], "would-fix": ["failure"], "error": ["error"],
               "skipped": ["skipped"], "pass": [], "fixed": []}
_STATUS = {0: "ok", 1: "warning", 2: "critical", 3: "unknown"}


def need(module: str):
    """Test dependencies (the [test] extra) must be installed: fail, never skip."""
    try:
        return importlib.import_module(module)
    except ImportError:
        pytest.fail(f"{module} is missing: pip install -e '.[test]' (xmlschema, prometheus_client)")


def run_sweep(inventory: Path, reports: dict[str, Path], *extra: str, timeout: int,
              env: dict | None = None) -> subprocess.CompletedProcess:
    """``keystone-checks run sweep -i INVENTORY --report FORMAT:PATH ...`` as a subprocess."""
    specs = [arg for name, path in reports.items() for arg in ("--report", f"{name}:{path}")]
    return subprocess.run([sys.executable, "-m", "keystone_checks.frontends.cli", "run", "sweep", "-i", str(inventory),
                           *specs, *extra], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def results(report: dict) -> list[tuple[str, dict]]:
    """(host name, result) for every result of every host, in report order."""
    return [(h["name"], r) for h in report["hosts"] for r in h["results"]]


def _down(report: dict, status: str | None = None) -> list[str]:
    """Hosts whose checks did not run (any non-ok status, or exactly ``status``)."""
    return [h["name"] for h in report["hosts"] if (h["status"] == status if status else h["status"] != "ok")]


def check_json(report: dict, text: str) -> dict:
    """The JSON text is the report, valid against the schema, and the schema is not vacuous."""
    Draft202012Validator.check_schema(SCHEMA)
    validator = Draft202012Validator(SCHEMA, format_checker=FormatChecker())
    parsed = json.loads(text)
    assert parsed == report
    assert not list(validator.iter_errors(parsed))
    summary = parsed["summary"]
    assert summary["hosts"] == len(parsed["hosts"])
    counted = Counter(r["outcome"] for _, r in results(parsed))
    assert {k: v for k, v in summary["outcomes"].items() if v} == dict(counted)
    assert summary["status"] == _STATUS[summary["exit_code"]]
    broken = json.loads(text)
    first = next(h for h in broken["hosts"] if h["results"])
    first["results"][0]["outcome"] = "maybe"
    del broken["summary"]["exit_code"]
    assert len(list(validator.iter_errors(broken))) == 2, "the schema really constrains outcomes and summary"
    return parsed


def check_junit(report: dict, text: str) -> dict[tuple[str, str], ET.Element]:
    """Valid against the JUnit XSD; a testcase per host x check (+ one ``(connect)`` error per host
    that did not run) with the outcome mapped. Returns the testcases by (classname, name)."""
    xmlschema = need("xmlschema")
    schema = xmlschema.XMLSchema(str(JUNIT_XSD))
    schema.validate(text)
    root = ET.fromstring(text)
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    every = results(report)
    down = _down(report)
    assert len(cases) == len(every) + len(down)
    for host, r in every:
        case = cases[(host, r["check"])]
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        assert kinds == _JUNIT_KIND[r["outcome"]], (host, r["check"], r["outcome"], kinds)
    for host in down:
        assert cases[(host, "(connect)")].find("error") is not None, host
    for host, r in every:
        if r["outcome"] in FAILING and r.get("remedy"):
            text = cases[(host, r["check"])].find("failure").text
            assert f"fix ({r['remedy']['risk']}): " in text, (host, r["check"])
            assert all(f"dry run first: $ {c}" in text for c in r["remedy"]["dry"]), (host, r["check"])
    assert int(root.get("failures")) == sum(r["outcome"] in FAILING for _, r in every)
    assert int(root.get("errors")) == sum(r["outcome"] == "error" for _, r in every) + len(down)
    next(root.iter("testcase")).attrib.pop("classname")
    with pytest.raises(xmlschema.XMLSchemaValidationError):  # the XSD is not vacuous
        schema.validate(ET.tostring(root, encoding="unicode"))
    return cases


def check_prometheus(report: dict, text: str) -> dict:
    """Parsed by prometheus_client: one outcome gauge sample per host x check, the per-run gauges
    agree with the report. Returns the metric families by name."""
    parser = need("prometheus_client.parser")
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    outcome = families["keystone_check_outcome"]
    assert outcome.type == "gauge"
    samples = {(s.labels["host"], s.labels["check"]): s for s in outcome.samples}
    every = results(report)
    assert len(samples) == len(outcome.samples) == len(every)
    for host, r in every:
        sample = samples[(host, r["check"])]
        assert sample.value == 1 and sample.labels["outcome"] == r["outcome"] and sample.labels["severity"] == r["severity"]
    # One info sample per check (the alert rules join title and guide from it), agreeing with the report.
    info = {s.labels["check"]: s for s in families["keystone_check_info"].samples}
    assert len(info) == len(families["keystone_check_info"].samples) == len({r["check"] for _, r in every})
    for host, r in every:
        labels = info[r["check"]].labels
        assert info[r["check"]].value == 1
        assert (labels["title"], labels["severity"], labels["guide_document"], labels["guide_section"]) == \
            (r["title"], r["severity"], r["guide"]["document"], r["guide"]["section"]), (host, r["check"])
    # the fix of every failing check, per host, while it fails
    fixes = {(s.labels["host"], s.labels["check"]): s.labels for s in families["keystone_check_fix_info"].samples}
    failing = {(host, r["check"]): r for host, r in every if r["outcome"] in FAILING and r.get("remedy")}
    assert set(fixes) == set(failing) and len(fixes) == len(families["keystone_check_fix_info"].samples)
    for key, r in failing.items():
        assert fixes[key]["risk"] == r["remedy"]["risk"]
        assert fixes[key]["dry_command"] == (r["remedy"]["dry"] or [""])[0]
    up = {s.labels["host"]: s.value for s in families["keystone_checks_host_up"].samples}
    assert up == {h["name"]: float(h["status"] == "ok") for h in report["hosts"]}
    assert families["keystone_checks_hosts_unreachable"].samples[0].value == len(_down(report, "unreachable"))
    assert families["keystone_checks_sweep_duration_seconds"].samples[0].value == pytest.approx(report["duration_s"])
    assert abs(families["keystone_checks_last_run_timestamp_seconds"].samples[0].value - time.time()) < 600
    assert families["keystone_checks_exit_code"].samples[0].value == report["summary"]["exit_code"]
    return families


def nagios_long_output(report: dict) -> int:
    """How many long-output lines (after the status line) the Nagios writer gives: one per failing
    result, at most 50, plus one "... N more" line."""
    failing = sum(r["outcome"] in FAILING for _, r in results(report))
    return min(failing, 50) + (failing > 50)


def check_nagios(report: dict, text: str) -> dict[str, str]:
    """One plugin status line whose counts and perfdata agree with the report, then one long-output
    line per failing check (host:check, its fix). Returns the perfdata."""
    assert text.endswith("\n")
    line, *long_output = text.rstrip("\n").split("\n")
    assert len(long_output) == nagios_long_output(report), long_output
    failing = {f"{host}:{r['check']}": r for host, r in results(report) if r["outcome"] in FAILING}
    for extra in long_output[:50]:
        name = extra.split(" (", 1)[0]
        assert name in failing, extra
        remedy = failing[name].get("remedy")
        if remedy:
            assert f"fix ({remedy['risk']})" in extra and "|" not in extra, extra
            if remedy["dry"]:
                assert remedy["dry"][0].replace("|", "/") in extra
    status, perf = line.split(" | ")
    every = [r for _, r in results(report)]
    critical = sum(r["outcome"] in FAILING and r["severity"] == "critical" for r in every)
    warning = sum(r["outcome"] in FAILING and r["severity"] == "warning" for r in every)
    # a critical check skipped behind a dependency that did not pass could not run: unknown
    blocked = sum(r["outcome"] == "skipped" and r["severity"] == "critical" and bool(r.get("blocked_by")) for r in every)
    unknown = sum(r["outcome"] == "error" for r in every) + len(_down(report)) + blocked
    detail = r" \(" if critical or warning or _down(report) or blocked else "$"
    word = report["summary"]["status"].upper()
    assert re.match(rf"KEYSTONE {word} - {critical} critical, {warning} warning, {unknown} unknown{detail}", status), status
    perfdata = dict(item.split("=") for item in perf.split())
    for key, value in report["summary"]["outcomes"].items():
        assert perfdata[key] == str(value)
    assert perfdata["unreachable"] == str(len(_down(report, "unreachable")))
    assert perfdata["hosts"] == str(len(report["hosts"]))
    return perfdata


def check_console(report: dict, text: str) -> None:
    """The plain (no colour) table names every host, every check that did not skip, and the
    hosts that could not be reached."""
    assert "\033[" not in text
    assert f"keystone-checks {report['phase']}: {len(report['hosts'])} host(s)" in text
    for host in report["hosts"]:
        assert host["name"] in text, host["name"]
    for host, r in results(report):
        assert r["outcome"] == "skipped" or r["check"] in text, (host, r["check"])
    if _down(report, "unreachable"):
        assert "UNREACHABLE" in text


class _Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows: dict[str, dict] = {}
        self.current: str | None = None
        self.open_details: list[str] = []
        self.external: list[str] = []
        self.in_open_details = False
        self.text_in_open = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if a.get(key) and re.match(r"(https?:)?//", a[key]):
                self.external.append(a[key])
        if tag == "tr" and "host" in (a.get("class") or "").split():
            self.current = a["data-host"]
            self.rows[self.current] = {}
        elif tag == "td" and self.current and "cell" in (a.get("class") or "").split():
            classes = [c for c in a["class"].split() if c.startswith("o-")]
            self.rows[self.current][a["data-check"]] = classes[0][2:]
        elif tag == "details" and "open" in a:
            self.open_details.append(self.current)
            self.in_open_details = True

    def handle_endtag(self, tag):
        if tag == "details":
            self.in_open_details = False
        if tag == "tr":
            self.current = None

    def handle_data(self, data):
        if self.in_open_details:
            self.text_in_open.append(data)


def _chromium(args: list[str], tmp: Path, timeout: int = 90) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if not binary:
        pytest.fail("Chromium is not installed: `apt-get install chromium` (.ci/run installs it)")
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           f"--user-data-dir={tmp / 'chromium-profile'}", "--window-size=1280,900", *args],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _dom(page: Path, tmp: Path, fragment: str = "") -> tuple[_Dom, str]:
    done = _chromium(["--dump-dom", page.as_uri() + fragment], tmp)
    dom = _Dom()
    dom.feed(done.stdout)
    return dom, done.stdout


def _cell_to_open(report: dict) -> tuple[str, dict]:
    """The first failing result (else the first error, else the first result): the one an alert links to."""
    every = results(report)
    for wanted in (FAILING, ("error",)):
        for host, r in every:
            if r["outcome"] in wanted:
                return host, r
    assert every, "no results to open"
    return every[0]


def check_html(report: dict, page: Path, tmp_path: Path) -> tuple[str, dict]:
    """Render the HTML matrix in headless Chromium: a real screenshot, then the DOM as Chromium built
    it. Returns the (host, result) whose cell the ``#open=HOST/CHECK`` deep link was checked on."""
    shot = tmp_path / "matrix.png"
    done = _chromium([f"--screenshot={shot}", page.as_uri()], tmp_path)
    assert shot.exists() and shot.stat().st_size > 5000, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # After parsing and the inline script: one row per host, one cell per check with the outcome
    # class, no external resources, every cell closed.
    dom, html = _dom(page, tmp_path)
    assert set(dom.rows) == {h["name"] for h in report["hosts"]}, html[:500]
    all_checks = {r["check"] for _, r in results(report)}
    for host in report["hosts"]:
        cells = dom.rows[host["name"]]
        assert set(cells) == all_checks
        for r in host["results"]:
            assert cells[r["check"]] == r["outcome"], (host["name"], r["check"])
        if host["status"] == "unreachable":
            assert set(cells.values()) == {"none"}
    assert dom.external == []
    assert not dom.open_details, "cells start closed"

    # Click-through: the deep link opens exactly that cell, showing message, expected, evidence and guide.
    host, r = _cell_to_open(report)
    dom, _ = _dom(page, tmp_path, "#open=" + quote(f"{host}/{r['check']}"))
    assert dom.open_details == [host]
    opened = " ".join(" ".join(dom.text_in_open).split())  # HTML normalises line ends: compare words

    def shown(text: str) -> bool:
        return " ".join(text.split()) in opened

    assert shown(r["message"]), (r["message"], opened[:2000])
    if r.get("expected"):
        assert shown(r["expected"][0])
    if r.get("evidence"):
        assert "evidence" in opened
    if (r.get("guide") or {}).get("section"):
        assert shown(r["guide"]["section"])
    if r.get("remedy"):
        assert shown(f"fix ({r['remedy']['risk']})") and shown(r["remedy"]["summary"]), opened[:2000]
        for command in r["remedy"]["dry"]:
            assert shown(command), (command, opened[:2000])
    check_failing_first(report, page, tmp_path)
    check_panel_closes(page, tmp_path, host, r["check"])
    return host, r


def failing_order(report: dict) -> list[str]:
    """Check ids failing (or in error) on any host, in the order the failing list must give them:
    worst first (severity, then outcome), then most hosts, then id."""
    from keystone_checks.engine.evaluate import is_failing, outcome_rank, worst_first

    worst: dict[str, tuple] = {}
    count: Counter = Counter()
    for _, r in results(report):
        if is_failing(r["outcome"]) or r["outcome"] == "error":
            count[r["check"]] += 1
            key = worst_first(r["outcome"], r["severity"])
            if r["check"] not in worst or outcome_rank(r["outcome"]) < outcome_rank(worst[r["check"]][1]):
                worst[r["check"]] = (key, r["outcome"])
    return sorted(worst, key=lambda c: (*worst[c][0], -count[c], c))


class _Sections(HTMLParser):
    """The page's sections in order and the failing list's check ids."""

    def __init__(self):
        super().__init__()
        self.sections: list[str] = []
        self.failing: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id", ""))
        elif tag == "li" and "failing" in (a.get("class") or "").split():
            self.failing.append(a["data-check"])


def check_failing_first(report: dict, page: Path, tmp_path: Path) -> list[str]:
    """As Chromium builds it: the first section is "what is failing", one entry per failing check,
    worst first. Returns the ids in page order."""
    done = _chromium(["--dump-dom", page.as_uri()], tmp_path)
    parsed = _Sections()
    parsed.feed(done.stdout)
    assert parsed.sections[:1] == ["failing"], parsed.sections
    assert parsed.failing == failing_order(report), parsed.failing[:20]
    return parsed.failing


# Appended to a copy of the page (test only): after the page's own script opened the deep-linked
# cell, press its close button, reopen it and press Esc; the results land in body attributes.
_CLOSE_PROBE = """<script>(function(){
function openCount(){return document.querySelectorAll('td.cell details[open]').length;}
var b=document.body; b.setAttribute('data-open-at-load', openCount());
var d=document.querySelector('td.cell details[open]');
if(d){d.querySelector('button.close').click();}
b.setAttribute('data-open-after-button', openCount());
if(d){d.open=true;}
b.setAttribute('data-open-reopened', openCount());
document.dispatchEvent(new KeyboardEvent('keydown',{key:'Escape',bubbles:true}));
b.setAttribute('data-open-after-esc', openCount());
})();</script>"""


def check_panel_closes(page: Path, tmp_path: Path, host: str, check: str) -> None:
    """In a real Chromium: the deep link opens the cell's panel; its close button closes it; Esc
    closes a reopened one."""
    probe = tmp_path / "close-probe.html"
    probe.write_text(page.read_text().replace("</body>", _CLOSE_PROBE + "</body>"))
    done = _chromium(["--dump-dom", probe.as_uri() + "#open=" + quote(f"{host}/{check}")], tmp_path)
    body = re.search(r"<body([^>]*)>", done.stdout)
    assert body, done.stdout[:500]
    attrs = dict(re.findall(r'(data-open-[a-z-]+)="(\d+)"', body.group(1)))
    assert attrs == {"data-open-at-load": "1", "data-open-after-button": "0", "data-open-reopened": "1",
                     "data-open-after-esc": "0"}, attrs
