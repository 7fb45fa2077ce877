"""Every playbook (phases and fixes) runs under the real pyinfra CLI against @local without a
traceback and writes a report in which every check has exactly one outcome; checks that cannot
apply here end `skipped` or `error` with a reason, never a crash."""

from pathlib import Path

import pytest
from kc_helpers import REPO, read_report, run_pyinfra, write_inventory

PLAYBOOKS = sorted(p.relative_to(REPO / "playbooks").as_posix()
                   for p in (REPO / "playbooks").rglob("*.py"))
OUTCOMES = {"pass", "fail", "error", "skipped", "fixed", "fix-failed", "would-fix"}


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_runs_on_local(playbook, tmp_path):
    report_path = tmp_path / "report.json"
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {
        "role": ["controller", "installer", "deployed"], "disk": "/dev/kc-absent-disk",
        "flake": str(tmp_path), "installer_marker": str(tmp_path / "marker")}})
    extra = ["--dry"] if playbook.startswith("fix/") else []  # fix playbooks: list, change nothing
    done = run_pyinfra(inventory, playbook, *extra, "--data", f"report={report_path}")
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output[-3000:]
    report = read_report(report_path)
    (host,) = report["hosts"]
    assert host["status"] == "ok", host["error"]
    assert host["results"], f"{playbook} ran no checks"
    for result in host["results"]:
        assert result["outcome"] in OUTCOMES
        if result["outcome"] in ("error", "skipped"):
            assert result["message"], f"{result['check']} ended {result['outcome']} without a reason"
    assert not Path("/dev/kc-absent-disk").exists()
