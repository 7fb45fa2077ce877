"""Every report writer, fed one real run's report (pyinfra API against @local plus an unreachable host),
validated by the format's own consumer: JSON Schema, a JUnit XSD (xmlschema), prometheus_client's
parser, the Nagios plugin line format, and a real headless Chromium for the HTML matrix.

The format-generic validations live in report_checks.py (tests/lab/test_lab_reports.py applies them to
one sweep of real lab guests); what is specific to this @local run is asserted here."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest
from kc_helpers import free_port, write_inventory
from report_checks import check_console, check_html, check_json, check_junit, check_nagios, check_prometheus, run_sweep

from keystone_checks.reports import WRITERS, parse_spec, writer

E2E_CHECKS = Path(__file__).parent / "fixtures" / "e2e_checks"


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
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
    return report, inventory


@pytest.fixture(scope="module")
def real_report(real_run):
    return real_run[0]


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


def test_check_only_run_reports_every_fix_and_its_dry_command_works(real_run, tmp_path):
    """A check-only sweep (no --fix): every failing result carries the catalog's fix and the commands
    that run it, dry first; the dry command, pointed at the run's inventory, lists the fix and
    changes nothing."""
    report, inventory = real_run
    assert report["fix_requested"] is False
    failing = [(h["name"], r) for h in report["hosts"] for r in h["results"] if r["outcome"] == "fail"]
    assert failing and all(r["fix"] is None and r["remedy"] for _, r in failing)
    others = [r for h in report["hosts"] for r in h["results"] if r["outcome"] not in ("fail", "fix-failed", "would-fix")]
    assert others and not any("remedy" in r for r in others), "only what fails carries a remedy"
    marker = next(r for h, r in failing if r["check"] == "marker-file-present")
    remedy = marker["remedy"]
    assert (remedy["risk"], remedy["playbook"]) == ("safe", None)
    # the commands name the inventory the run read (the report records it)
    assert report["inventory"] == str(inventory)
    inv = shlex.quote(str(inventory))
    assert remedy["dry"] == [f"keystone-checks run sweep -i {inv} --limit @local --fix --dry",
                             f"pyinfra {inv} playbooks/sweep.py --limit @local --dry --data fix=true"]
    assert remedy["apply"] == [f"keystone-checks run sweep -i {inv} --limit @local --fix",
                               f"pyinfra -y {inv} playbooks/sweep.py --limit @local --data fix=true"]
    tiny = next(r for h, r in failing if r["check"] == "root-is-tiny")
    assert tiny["remedy"] == {"summary": "no automated fix: see the guide section", "risk": "none", "playbook": None,
                              "dry": [], "apply": []}

    out = tmp_path / "dry.json"
    args = shlex.split(remedy["dry"][0])[1:]
    done = run_sweep(inventory, {"json": out}, *args[4:], timeout=120, env={"KEYSTONE_CHECKS_DIR": str(E2E_CHECKS)})
    assert args[:4] == ["run", "sweep", "-i", str(inventory)]
    dry = json.loads(out.read_text())
    again = [r for h in dry["hosts"] if h["name"] == "@local" for r in h["results"] if r["check"] == "marker-file-present"][0]
    assert dry["dry_run"] is True and again["outcome"] == "would-fix", done.stdout + done.stderr
    assert again["fix"]["commands"] and again["remedy"]["risk"] == "safe"
    assert not (Path(inventory).parent / "marker").exists(), "the dry run changed nothing"


def test_every_format_on_a_synthetic_fleet_with_failed_fixes():
    """24 hosts x 31 checks (tests/report_fleet.py): every outcome, hosts unreachable, timed out and in
    error, fixes of every risk, and fixes that failed with the command's error text, which every
    format shows."""
    from report_fleet import fleet

    report = fleet(24, 31)
    check_json(report, writer("json")(report))
    cases = check_junit(report, writer("junit")(report))
    families = check_prometheus(report, writer("prometheus")(report))
    check_nagios(report, writer("nagios")(report))
    failed = [(h["name"], r) for h in report["hosts"] for r in h["results"] if (r.get("fix") or {}).get("error")]
    assert failed and all(r["outcome"] == "fix-failed" for _, r in failed)
    errors = {(s.labels["host"], s.labels["check"]): s.labels["fix_error"] for s in families["keystone_check_fix_info"].samples}
    html = writer("html")(report)
    console = " ".join(writer("console")(report).split())
    for host, r in failed:
        error = r["fix"]["error"]
        assert f"fix error: {error}" in cases[(host, r["check"])].find("failure").text
        assert errors[(host, r["check"])] == error
        assert f'<pre class="fix-error">{error}</pre>' in html
        assert f"fix error: {error}" in console
    assert "fix error: " in writer("nagios")(report)


def test_pyinfra_command_line_names_the_inventory_for_remedy_commands():
    from keystone_checks.frontends.playbook import _inventory_argument

    assert _inventory_argument(["pyinfra", "-y", "inv/fleet.py", "playbooks/sweep.py", "--data", "fix=true"]) == "inv/fleet.py"
    assert _inventory_argument(["pyinfra", "--limit", "web1", "@local", "/opt/kc/playbooks/fix/load-keys.py"]) == "@local"
    # a shape it does not know: no guess (the commands then say INVENTORY)
    assert _inventory_argument(["pyinfra", "inv.py", "deploy.py"]) is None
