"""Waivers: parsing with file:line errors, waived vs expired vs untouched outcomes, the exit status,
the report's waivers section and JSON schema, through `keystone-checks run` and the pyinfra CLI."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET

import pytest
from kc_helpers import read_report, run_pyinfra, write_inventory
from test_cli import E2E_CHECKS, assert_valid_report, cli

from keystone_checks.engine import waivers
from keystone_checks.engine.evaluate import CheckResult, Outcome

ENV = {"KEYSTONE_CHECKS_DIR": str(E2E_CHECKS)}
IDS = ["root-is-tiny", "after-tiny", "root-has-space"]
TODAY = dt.date(2026, 12, 1)


def write(tmp_path, text: str):
    path = tmp_path / "waivers.yaml"
    path.write_text(text)
    return path


def test_load_reads_entries_with_defaults_and_sources(tmp_path):
    path = write(tmp_path, "# accepted findings\n- check: root-is-tiny\n  hosts: 'web-*'\n  reason: big disks on purpose\n"
                           "  expires: 2027-01-31\n- check: after-tiny\n  reason: 'tracked in the runbook'\n"
                           "  expires: '2026-11-30'\n")
    loaded = waivers.load(path, IDS)
    assert [(w.check, w.hosts, w.expires, w.source) for w in loaded] == [
        ("root-is-tiny", "web-*", dt.date(2027, 1, 31), f"{path}:2"),
        ("after-tiny", "*", dt.date(2026, 11, 30), f"{path}:6")]
    assert [w.expired(TODAY) for w in loaded] == [False, True]
    assert not waivers.Waiver("x", "*", "r", TODAY, "f:1").expired(TODAY), "a waiver holds through its last day"
    assert waivers.load(write(tmp_path, ""), IDS) == []


@pytest.mark.parametrize("text, where, words", [
    ("- check: nope\n  reason: r\n  expires: 2030-01-01\n", 1, "unknown check id 'nope'; valid ids: after-tiny"),
    ("- check: root-is-tiny\n  reason: r\n", 1, "waiver without 'expires'"),
    ("- check: root-is-tiny\n  expires: 2030-01-01\n", 1, "waiver without 'reason'"),
    ("- check: root-is-tiny\n  reason: r\n  expires: next year\n", 3, "'next year' is not a date YYYY-MM-DD"),
    ("- check: root-is-tiny\n  reason: r\n  expires: 2030-02-30\n", 3, "is not a date"),
    ("- check: root-is-tiny\n  reason: r\n  expires: 2030-01-01\n  until: x\n", 4, "unknown key 'until'"),
    ("- check: root-is-tiny\n  reason: r\n  reason: s\n  expires: 2030-01-01\n", 3, "duplicate key 'reason'"),
    ("- check: root-is-tiny\n  reason: [a, b]\n  expires: 2030-01-01\n", 2, "reason must be a single value"),
    ("check: root-is-tiny\n", 1, "a waivers file is a YAML list"),
    ("- &a {check: root-is-tiny}\n- *a\n", 2, "alias *a is not allowed"),
    ("- check: root-is-tiny\n  reason: [unclosed\n", 3, "YAML syntax error"),
])
def test_bad_files_name_file_and_line(tmp_path, text, where, words):
    path = write(tmp_path, text)
    with pytest.raises(waivers.WaiverError) as caught:
        waivers.load(path, IDS)
    assert str(caught.value).startswith(f"{path}:{where}: "), str(caught.value)
    assert words in str(caught.value), str(caught.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(waivers.WaiverError, match="waivers file not found"):
        waivers.load(tmp_path / "nope.yaml", IDS)


def result(check, outcome):
    return CheckResult(check=check, title="t", severity="critical", outcome=outcome, message="expected x, found y")


def test_apply_waives_failures_only_and_reports_expired_ones():
    loaded = [waivers.Waiver("a", "web-*", "accepted", dt.date(2027, 1, 1), "w.yaml:1"),
              waivers.Waiver("b", "*", "old", dt.date(2026, 1, 1), "w.yaml:5"),
              waivers.Waiver("c", "*", "accepted", dt.date(2027, 1, 1), "w.yaml:9"),
              waivers.Waiver("d", "*", "accepted", dt.date(2027, 1, 1), "w.yaml:13")]
    results = [result("a", Outcome.FAIL), result("b", Outcome.FAIL), result("c", Outcome.ERROR),
               result("d", Outcome.PASS), result("e", Outcome.FAIL)]
    waivers.apply(results, "web-1", loaded, TODAY)
    a, b, c, d, e = results
    assert a.outcome == Outcome.WAIVED and "waived until 2027-01-01 (accepted; w.yaml:1)" in a.message
    assert "expected x, found y" in a.message and a.waiver["expired"] is False
    assert b.outcome == Outcome.FAIL and "w.yaml:5 expired on 2026-01-01" in b.message and b.waiver["expired"] is True
    assert c.outcome == Outcome.ERROR, "a check that could not be evaluated is never waived"
    assert d.outcome == Outcome.PASS and d.waiver["source"] == "w.yaml:13"
    assert e.outcome == Outcome.FAIL and e.waiver is None
    other = [result("a", Outcome.FAIL)]
    waivers.apply(other, "db-1", loaded, TODAY)
    assert other[0].outcome == Outcome.FAIL and other[0].waiver is None, "hosts glob not matched"
    lines = waivers.expired_lines(loaded, TODAY)
    assert len(lines) == 1 and "EXPIRED on 2026-01-01 (w.yaml:5)" in lines[0]


# -- end to end ---------------------------------------------------------------------------------------


def test_run_with_waivers_exit_status_report_and_expired_warning(tmp_path):
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed"}})
    live = write(tmp_path, "- check: root-is-tiny\n  hosts: '@loc*'\n  reason: big disk on purpose\n  expires: 2999-12-31\n")
    out = tmp_path / "r.json"
    base = ["run", "sweep", "-i", str(inventory), "--checks", "root-is-tiny,root-has-space", "--report", f"json:{out}",
            "--report", "console"]
    done = cli(*base, env=ENV)
    assert done.returncode == 2, done.stdout + done.stderr  # without the waiver: critical

    junit = tmp_path / "r.xml"
    done = cli(*base, "--waivers", str(live), "--report", f"junit:{junit}", env=ENV)
    assert done.returncode == 0, done.stdout + done.stderr  # waived: not counted toward the exit status
    # CI reading JUnit sees an accepted failure as skipped with the waiver's reason, never as a pass
    (case,) = [c for c in ET.parse(junit).iter("testcase") if c.get("name") == "root-is-tiny"]
    (skipped,) = case.findall("skipped")
    assert skipped.get("message").startswith("waived: ") and "big disk on purpose" in skipped.get("message")
    report = json.loads(out.read_text())
    assert_valid_report(report)
    results = {r["check"]: r for r in report["hosts"][0]["results"]}
    assert results["root-is-tiny"]["outcome"] == "waived"
    done_after = cli("run", "sweep", "-i", str(inventory), "--checks", "after-tiny", "--waivers", str(live),
                     "--report", f"json:{tmp_path / 'after.json'}", env=ENV)
    after = {r["check"]: r for r in json.loads((tmp_path / "after.json").read_text())["hosts"][0]["results"]}
    assert after["after-tiny"]["message"] == "skipped because root-is-tiny (waived) did not pass", done_after.stderr
    assert done_after.returncode == 3, "a critical check that could not run behind a waived one is UNKNOWN"
    assert results["root-is-tiny"]["waiver"] == {"check": "root-is-tiny", "hosts": "@loc*", "reason": "big disk on purpose",
                                                 "expires": "2999-12-31", "source": f"{live}:1", "expired": False}
    assert report["summary"]["outcomes"]["waived"] == 1 and report["summary"]["outcomes"]["fail"] == 0
    assert report["waivers"] == {"file": str(live), "count": 1, "expired": []}
    assert "waived" in done.stdout

    expired = write(tmp_path, "- check: root-is-tiny\n  reason: big disk on purpose\n  expires: 2020-01-31\n")
    done = cli(*base, "--waivers", str(expired), env=ENV)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "WARNING: waiver EXPIRED on 2020-01-31" in done.stderr and f"{expired}:1" in done.stderr
    report = json.loads(out.read_text())
    assert_valid_report(report)
    (entry,) = report["waivers"]["expired"]
    assert entry["check"] == "root-is-tiny" and entry["expired"] is True
    results = {r["check"]: r for r in report["hosts"][0]["results"]}
    assert results["root-is-tiny"]["outcome"] == "fail" and results["root-is-tiny"]["waiver"]["expired"] is True

    bad = write(tmp_path, "- check: root-is-tiny\n  reason: r\n  expires: 2030-01-01\n- check: typo-check\n"
                          "  reason: r\n  expires: 2030-01-01\n")
    done = cli(*base, "--waivers", str(bad), env=ENV)
    assert done.returncode == 3 and f"{bad}:4: unknown check id 'typo-check'" in done.stderr, done.stderr


def test_playbook_waivers_through_host_data(tmp_path):
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed"}})
    live = write(tmp_path, "- check: root-is-tiny\n  reason: big disk on purpose\n  expires: 2999-12-31\n"
                           "- check: root-has-space\n  reason: never mind\n  expires: 2001-01-01\n")
    report = tmp_path / "r.json"
    done = run_pyinfra(inventory, "sweep.py", "--data", "checks=root-is-tiny,root-has-space", "--data", f"waivers={live}",
                       "--data", f"report={report}", env=ENV)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-2000:]
    data = read_report(report)
    assert_valid_report(data)
    results = {r["check"]: r["outcome"] for r in data["hosts"][0]["results"]}
    assert results == {"root-is-tiny": "waived", "root-has-space": "pass"}
    assert data["summary"]["exit_code"] == 0 and data["summary"]["outcomes"]["waived"] == 1
    assert [w["check"] for w in data["waivers"]["expired"]] == ["root-has-space"]
    assert "WARNING: waiver EXPIRED on 2001-01-01" in done.stdout
