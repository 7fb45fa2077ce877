"""Every report format from ONE real sweep of lab guests (a deployed server, the installer ISO and a
host nothing answers for), validated by the format's own consumer exactly as tests/test_reports.py
validates the @local sweep (the shared checks are in tests/report_checks.py).

KC_LAB_REPORTS_DIR (optional): a directory to keep copies of the five reports in (CI artifacts).
"""

import json
import os
import shutil
from pathlib import Path

import pytest
from kc_helpers import EXIT_UNKNOWN, LAB_DATA, free_port
from report_checks import check_console, check_html, check_json, check_junit, check_nagios, check_prometheus, run_sweep

from keystone_checks.lab import inventory

pytestmark = pytest.mark.lab

# As in test_matrix.py: the guests have 1 GB of RAM and an always-busy emulated CPU.


def _keep(reports: dict[str, Path]) -> None:
    target = os.environ.get("KC_LAB_REPORTS_DIR")
    if not target:
        return
    Path(target).mkdir(parents=True, exist_ok=True)
    for path in reports.values():
        if path.exists():
            shutil.copy2(path, Path(target) / path.name)


def test_one_lab_sweep_writes_every_report_format(lab_host, tmp_path):
    guests = [lab_host("deployed"), lab_host("installer")]
    names = {g.name for g in guests}
    down = ("lab-unreachable", {"role": "deployed", "ssh_hostname": "127.0.0.1", "ssh_port": free_port()})
    inv = inventory.write(tmp_path / "inventory.py", [*((g.name, g.data) for g in guests), down])
    reports = {"json": tmp_path / "sweep.json", "junit": tmp_path / "sweep-junit.xml",
               "prometheus": tmp_path / "sweep.prom", "nagios": tmp_path / "sweep-nagios.txt",
               "html": tmp_path / "sweep.html"}

    done = run_sweep(inv, reports, *LAB_DATA, timeout=900)
    _keep(reports)  # before any assertion: a failing run's reports are the ones worth keeping
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    assert reports["json"].exists(), (done.returncode, done.stderr[-3000:])
    report = json.loads(reports["json"].read_text())
    assert done.returncode == report["summary"]["exit_code"] == EXIT_UNKNOWN, (
        done.returncode, [(h, r["check"], r["message"]) for h in report["hosts"] for r in h["results"]
                          if r["outcome"] == "fail" and r["severity"] == "critical"], done.stderr[-2000:])

    hosts = {h["name"]: h for h in report["hosts"]}
    assert set(hosts) == names | {down[0]}
    assert hosts[down[0]]["status"] == "unreachable", hosts[down[0]]
    for name in names:
        assert hosts[name]["status"] == "ok", (name, hosts[name]["error"])
        assert any(r["outcome"] == "pass" for r in hosts[name]["results"]), name

    check_json(report, reports["json"].read_text())
    cases = check_junit(report, reports["junit"].read_text())
    families = check_prometheus(report, reports["prometheus"].read_text())
    check_nagios(report, reports["nagios"].read_text())
    check_html(report, reports["html"], tmp_path)
    check_console(report, done.stdout)  # no --report to stdout: the CLI prints the table there

    assert names <= {host for host, _ in cases}
    assert names <= {s.labels["host"] for s in families["keystone_check_outcome"].samples}
    for fmt in ("junit", "prometheus", "html"):
        text = reports[fmt].read_text()
        assert all(name in text for name in names), fmt
