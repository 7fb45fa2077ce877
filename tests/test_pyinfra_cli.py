"""The real pyinfra CLI running our playbooks: against @local and against real sshd hosts."""

import os
import sys
from pathlib import Path

import pytest
from kc_helpers import outcomes, read_report, run_pyinfra, write_inventory

E2E_CHECKS = Path(__file__).parent / "fixtures" / "e2e_checks"
# No sbin directories: cryptsetup lives there, so the credstore check must end `error`.
NO_SBIN_PATH = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])

EXPECTED = {
    "root-has-space": "pass",
    "root-is-tiny": "fail",
    "after-tiny": "skipped",
    "credstore-needs-cryptsetup": "error",
    "needs-disk": "error",
}


def test_local_playbook_outcomes_and_report(tmp_path):
    report_path = tmp_path / "report.json"
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed", "installer_marker": str(tmp_path / "marker")}})
    done = run_pyinfra(inventory, "sweep.py", "--data", f"report={report_path}",
                       env={"KEYSTONE_CHECKS_DIR": str(E2E_CHECKS), "PATH": NO_SBIN_PATH})
    assert "Traceback" not in done.stdout + done.stderr
    report = read_report(report_path)
    got = outcomes(report, "@local")
    assert {k: got[k] for k in EXPECTED} == EXPECTED
    assert got["marker-file-present"] == "fail"
    results = {r["check"]: r for r in report["hosts"][0]["results"]}
    assert "command 'cryptsetup' not found" in results["credstore-needs-cryptsetup"]["message"]
    assert "'disk' is undefined" in results["needs-disk"]["message"]
    assert results["root-is-tiny"]["expected"] == ["a root filesystem of at most 1 byte"]
    assert results["after-tiny"]["message"] == "skipped because root-is-tiny (fail) did not pass"
    assert report["summary"]["exit_code"] == 2 and report["summary"]["status"] == "critical"
    assert "root-is-tiny" in done.stdout, "the per-host table is printed at the end"
    assert not (tmp_path / "marker").exists(), "without fix=true nothing on the host changes"


def test_real_catalog_preflight_on_local_does_not_crash(tmp_path):
    report_path = tmp_path / "preflight.json"
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": ["controller", "installer"], "disk": "/dev/kc-no-such-disk"}})
    done = run_pyinfra(inventory, "preflight.py", "--data", f"report={report_path}")
    assert "Traceback" not in done.stdout + done.stderr
    got = outcomes(read_report(report_path), "@local")
    assert got["target-disk-present"] == "fail"
    assert got["target-disk-size"] == "skipped"


@pytest.mark.sshd
def test_sshd_hosts_one_exec_per_host_and_fixes(tmp_path, request):
    from kc_helpers import Sshd

    servers = []
    for name in ("alpha", "beta"):
        server = Sshd(tmp_path / name)
        server.root.mkdir()
        servers.append(server.start())
        request.addfinalizer(server.stop)
    markers = {s: tmp_path / f"marker-{i}" for i, s in enumerate(servers)}
    hosts = {name: {**s.host_data(), "role": "deployed", "installer_marker": str(markers[s])}
             for name, s in zip(("alpha", "beta"), servers)}
    inventory = write_inventory(tmp_path / "inv.py", hosts)
    env = {"KEYSTONE_CHECKS_DIR": str(E2E_CHECKS)}

    report_path = tmp_path / "sweep.json"
    done = run_pyinfra(inventory, "sweep.py", "--data", f"report={report_path}", env=env)
    assert "Traceback" not in done.stdout + done.stderr
    report = read_report(report_path)
    for name in ("alpha", "beta"):
        got = outcomes(report, name)
        assert got["root-has-space"] == "pass" and got["root-is-tiny"] == "fail", got
    for server in servers:
        assert len(server.execs()) == 1, f"one exec channel per host per playbook run, got {server.execs()}"

    # Dry run of the fixes: commands listed, nothing executed.
    for server in servers:
        server.exec_log.unlink()
    dry_path = tmp_path / "dry.json"
    done = run_pyinfra(inventory, "sweep.py", "--dry", "--data", "fix=true", "--data", f"report={dry_path}", env=env)
    report = read_report(dry_path)
    marker_result = {r["check"]: r for r in report["hosts"][0]["results"]}["marker-file-present"]
    assert marker_result["outcome"] == "would-fix"
    assert any("touch" in c for c in marker_result["fix"]["commands"]), marker_result["fix"]
    assert report["dry_run"] is True
    assert not any(m.exists() for m in markers.values()), "--dry must not change the host"

    # Real fix: the marker is created, the re-check records `fixed`; the unfixable check stays failed.
    fixed_path = tmp_path / "fixed.json"
    done = run_pyinfra(inventory, "sweep.py", "--data", "fix=true", "--data", f"report={fixed_path}", env=env)
    report = read_report(fixed_path)
    for name in ("alpha", "beta"):
        got = outcomes(report, name)
        assert got["marker-file-present"] == "fixed", (got, done.stdout[-2000:])
        assert got["root-is-tiny"] == "fail"
    assert all(m.exists() for m in markers.values())


def test_playbook_writes_extra_report_formats(tmp_path):
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed", "installer_marker": str(tmp_path / "m")}})
    junit, prom = tmp_path / "r.xml", tmp_path / "r.prom"
    done = run_pyinfra(inventory, "sweep.py", "--data", f"report={tmp_path / 'r.json'}",
                       "--data", f"reports=junit:{junit},prometheus:{prom},bogus:{tmp_path / 'x'}",
                       env={"KEYSTONE_CHECKS_DIR": str(E2E_CHECKS), "PATH": NO_SBIN_PATH})
    assert "<testcase" in junit.read_text() and 'name="root-is-tiny"' in junit.read_text()
    assert 'keystone_check_outcome{' in prom.read_text()
    assert "unknown report format 'bogus'" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_cli_header_does_not_claim_an_exit_code_pyinfra_does_not_give(tmp_path):
    """pyinfra exits by its own rules; the printed header says which command gives the Nagios code."""
    from kc_helpers import run_pyinfra

    report = tmp_path / "r.json"
    done = run_pyinfra("@local", "preflight.py", "--data", "role=controller", "--data", f"report={report}")
    header = next(line for line in done.stdout.splitlines() if line.startswith("keystone-checks preflight:"))
    assert "(exit " not in header and "Nagios code" in header and "keystone-checks run" in header, header


def test_bad_host_data_still_writes_the_report_where_asked(tmp_path):
    """Host data the grammar refuses makes the host `error`, and the report still goes to the
    path the operator gave (found by the lab wipe test: it went to the default path)."""
    from kc_helpers import run_pyinfra

    report = tmp_path / "r.json"
    run_pyinfra("@local", "boot.py", "--data", "role=deployed", "--data", "destructive_device=/dev/vda",
                "--data", f"report={report}")
    import json

    host = json.loads(report.read_text())["hosts"][0]
    assert host["status"] == "error" and "does not name a host" in host["error"], host
