"""Every report writer, fed one real run's report (pyinfra API against @local plus an unreachable host),
validated by the format's own consumer: JSON Schema, a JUnit XSD (xmlschema), prometheus_client's
parser, the Nagios plugin line format, and a real headless Chromium for the HTML matrix.

The format-generic validations live in report_checks.py (tests/lab/test_lab_reports.py applies them to
one sweep of real lab guests); what is specific to this @local run is asserted here."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from kc_helpers import free_port, write_inventory
from report_checks import check_console, check_html, check_json, check_junit, check_nagios, check_prometheus, run_sweep

from keystone_checks.reports import WRITERS, parse_spec, writer

E2E_CHECKS = Path(__file__).parent / "fixtures" / "e2e_checks"


@pytest.fixture(scope="module")
def real_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reports")
    inventory = write_inventory(tmp / "inv.py", {
        "@local": {"role": "deployed", "installer_marker": str(tmp / "marker")},
        "down-host": {"role": "deployed", "ssh_hostname": "127.0.0.1", "ssh_port": free_port()},
    })
    out = tmp / "report.json"
    done = run_sweep(inventory, {"json": out}, timeout=120, env={"KEYSTONE_CHECKS_DIR": str(E2E_CHECKS)})
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
    check_json(real_report, writer("json")(real_report))
    assert real_report["summary"]["exit_code"] == 2 and real_report["summary"]["status"] == "critical"
    down = [h for h in real_report["hosts"] if h["name"] == "down-host"][0]
    assert down["status"] == "unreachable" and "connection refused" in down["error"]


def test_junit_validates_against_xsd_and_maps_outcomes(real_report):
    cases = check_junit(real_report, writer("junit")(real_report))
    assert cases[("down-host", "(connect)")].find("error") is not None
    assert ("@local", "root-is-tiny") in cases


def test_prometheus_textfile_parses(real_report):
    families = check_prometheus(real_report, writer("prometheus")(real_report))
    assert families["keystone_checks_hosts_unreachable"].samples[0].value == 1
    assert families["keystone_checks_exit_code"].samples[0].value == 2


def test_nagios_line(real_report):
    line = writer("nagios")(real_report)
    perfdata = check_nagios(real_report, line)
    assert line.startswith("KEYSTONE CRITICAL - ")
    assert perfdata["unreachable"] == "1" and perfdata["hosts"] == "2"


def test_console_writer(real_report):
    text = writer("console")(real_report)
    check_console(real_report, text)
    assert "down-host" in text and "UNREACHABLE" in text and "root-is-tiny" in text


def test_html_matrix_in_headless_chromium(real_report, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(writer("html")(real_report))
    # The deep link checked is the failing @local/root-is-tiny cell, with message, expected, evidence and guide.
    host, opened = check_html(real_report, page, tmp_path)
    assert (host, opened["check"]) == ("@local", "root-is-tiny")
    assert opened["expected"] and opened["evidence"] and opened["guide"]["section"]


def test_report_files_are_readable_by_other_users(tmp_path):
    """node_exporter reads the textfile as its own user: the atomic write must not leave mkstemp's 0600."""
    from keystone_checks.engine.outcome import write_atomic

    old = os.umask(0o022)
    try:
        written = write_atomic(tmp_path / "keystone.prom", "x 1\n")
    finally:
        os.umask(old)
    assert oct(written.stat().st_mode & 0o777) == oct(0o644)
    assert [p.name for p in tmp_path.iterdir()] == ["keystone.prom"], "no temporary file left behind"
