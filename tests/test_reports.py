"""Every report writer, fed one real run's report (pyinfra API against @local plus an unreachable host),
validated by the format's own consumer: JSON Schema, a JUnit XSD (xmlschema), prometheus_client's
parser, the Nagios plugin line format, and a real headless Chromium for the HTML matrix."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from keystone_checks.reports import WRITERS, parse_spec, writer
from kc_helpers import REPO, free_port, write_inventory


E2E_CHECKS = Path(__file__).parent / "fixtures" / "e2e_checks"
JUNIT_XSD = Path(__file__).parent / "fixtures" / "junit" / "junit.xsd"
SCHEMA = json.loads((REPO / "keystone_checks" / "schema" / "report.schema.json").read_text())


def _need(module: str):
    """Test dependencies (the [test] extra) must be installed: fail, never skip."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        pytest.fail(f"{module} is missing: pip install -e '.[test]' (xmlschema, prometheus_client)")


@pytest.fixture(scope="module")
def real_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reports")
    inventory = write_inventory(tmp / "inv.py", {
        "@local": {"role": "deployed", "installer_marker": str(tmp / "marker")},
        "down-host": {"role": "deployed", "ssh_hostname": "127.0.0.1", "ssh_port": free_port()},
    })
    out = tmp / "report.json"
    done = subprocess.run([sys.executable, "-m", "keystone_checks.cli", "run", "sweep", "-i", str(inventory),
                           "--report", f"json:{out}"], capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "KEYSTONE_CHECKS_DIR": str(E2E_CHECKS)}, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stdout + done.stderr
    report = json.loads(out.read_text())
    outcomes = {r["outcome"] for h in report["hosts"] for r in h["results"]}
    assert {"pass", "fail", "skipped", "error"} <= outcomes, outcomes  # every branch of every writer is exercised
    return report


def test_registry_and_spec_parsing():
    assert set(WRITERS) == {"console", "json", "junit", "prometheus", "nagios", "html"}
    assert parse_spec("prometheus:/var/lib/x.prom") == ("prometheus", "/var/lib/x.prom")
    assert parse_spec("nagios") == ("nagios", None)
    with pytest.raises(ValueError):
        parse_spec("yaml:/tmp/x")


def test_json_report_matches_schema(real_report):
    Draft202012Validator.check_schema(SCHEMA)
    validator = Draft202012Validator(SCHEMA, format_checker=FormatChecker())
    text = writer("json")(real_report)
    assert not list(validator.iter_errors(json.loads(text)))
    broken = json.loads(text)
    broken["hosts"][0]["results"][0]["outcome"] = "maybe"
    del broken["summary"]["exit_code"]
    assert len(list(validator.iter_errors(broken))) == 2, "the schema really constrains outcomes and summary"
    down = [h for h in real_report["hosts"] if h["name"] == "down-host"][0]
    assert down["status"] == "unreachable" and "connection refused" in down["error"]


def test_junit_validates_against_xsd_and_maps_outcomes(real_report):
    xmlschema = _need("xmlschema")
    text = writer("junit")(real_report)
    schema = xmlschema.XMLSchema(str(JUNIT_XSD))
    schema.validate(text)
    import xml.etree.ElementTree as ET

    root = ET.fromstring(text)
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    results = [(h["name"], r) for h in real_report["hosts"] for r in h["results"]]
    assert len(cases) == len(results) + 1  # + the unreachable host's (connect) case
    for host, r in results:
        case = cases[(host, r["check"])]
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        expected = {"fail": ["failure"], "error": ["error"], "skipped": ["skipped"], "pass": []}[r["outcome"]]
        assert kinds == expected, (host, r["check"], r["outcome"], kinds)
    assert cases[("down-host", "(connect)")].find("error") is not None
    assert int(root.get("failures")) == sum(r["outcome"] == "fail" for _, r in results)
    assert int(root.get("errors")) == sum(r["outcome"] == "error" for _, r in results) + 1
    with pytest.raises(xmlschema.XMLSchemaValidationError):  # the XSD is not vacuous
        schema.validate(text.replace('classname="@local"', "", 1))


def test_prometheus_textfile_parses(real_report):
    parser = _need("prometheus_client.parser")
    text = writer("prometheus")(real_report)
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    outcome = families["keystone_check_outcome"]
    assert outcome.type == "gauge"
    samples = {(s.labels["host"], s.labels["check"]): s for s in outcome.samples}
    results = [(h["name"], r) for h in real_report["hosts"] for r in h["results"]]
    assert len(samples) == len(outcome.samples) == len(results)
    for host, r in results:
        sample = samples[(host, r["check"])]
        assert sample.value == 1 and sample.labels["outcome"] == r["outcome"] and sample.labels["severity"] == r["severity"]
    assert families["keystone_checks_hosts_unreachable"].samples[0].value == 1
    assert families["keystone_checks_sweep_duration_seconds"].samples[0].value == pytest.approx(real_report["duration_s"])
    assert abs(families["keystone_checks_last_run_timestamp_seconds"].samples[0].value - time.time()) < 600
    assert families["keystone_checks_exit_code"].samples[0].value == 2


def test_nagios_line(real_report):
    line = writer("nagios")(real_report)
    assert line.count("\n") == 1
    status, perf = line.rstrip("\n").split(" | ")
    outcomes = {(h["name"], r["check"]): r for h in real_report["hosts"] for r in h["results"]}
    critical = sum(r["outcome"] == "fail" and r["severity"] == "critical" for r in outcomes.values())
    unknown = sum(r["outcome"] == "error" for r in outcomes.values()) + 1
    assert re.match(rf"KEYSTONE CRITICAL - {critical} critical, \d+ warning, {unknown} unknown \(", status), status
    perfdata = dict(item.split("=") for item in perf.split())
    for key, value in real_report["summary"]["outcomes"].items():
        assert perfdata[key] == str(value)
    assert perfdata["unreachable"] == "1" and perfdata["hosts"] == "2"


def test_console_writer(real_report):
    text = writer("console")(real_report)
    assert "down-host" in text and "UNREACHABLE" in text and "root-is-tiny" in text and "\033[" not in text


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


def test_html_matrix_in_headless_chromium(real_report, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(writer("html")(real_report))
    shot = tmp_path / "matrix.png"
    done = _chromium([f"--screenshot={shot}", page.as_uri()], tmp_path)
    assert shot.exists() and shot.stat().st_size > 5000, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The DOM as Chromium built it (after parsing and the inline script): one row per host, one cell
    # per check with the outcome class, no external resources.
    done = _chromium(["--dump-dom", page.as_uri()], tmp_path)
    dom = _Dom()
    dom.feed(done.stdout)
    assert set(dom.rows) == {h["name"] for h in real_report["hosts"]}, done.stdout[:500]
    all_checks = {r["check"] for h in real_report["hosts"] for r in h["results"]}
    for host in real_report["hosts"]:
        cells = dom.rows[host["name"]]
        assert set(cells) == all_checks
        for r in host["results"]:
            assert cells[r["check"]] == r["outcome"], (host["name"], r["check"])
        if host["status"] == "unreachable":
            assert set(cells.values()) == {"none"}
    assert dom.external == []
    assert not dom.open_details, "cells start closed"

    # Click-through: the deep link opens exactly the failing cell, showing message, expected and fix.
    failing = [r for r in real_report["hosts"][0]["results"] if r["check"] == "root-is-tiny"][0]
    done = _chromium(["--dump-dom", page.as_uri() + "#open=" + quote("@local/root-is-tiny")], tmp_path)
    dom = _Dom()
    dom.feed(done.stdout)
    assert dom.open_details == ["@local"]
    opened = " ".join(dom.text_in_open)
    assert failing["expected"][0] in opened and "evidence" in opened and failing["guide"]["section"] in opened
