"""Guarantee: broken inventories (host data of the wrong type, an unknown role, a missing role,
missing host data a check needs) give clear messages naming the host and the key, through the
real pyinfra CLI, with no traceback; the well-formed host still runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kc_helpers import Sshd, read_report, run_pyinfra, write_inventory

E2E_CHECKS = Path(__file__).parent / "fixtures" / "e2e_checks"


@pytest.mark.sshd
def test_broken_host_data_named_by_host_and_key(tmp_path, request):
    server = Sshd(tmp_path / "sshd")
    server.root.mkdir()
    server.start()
    request.addfinalizer(server.stop)
    base = {**server.host_data(), "installer_marker": str(tmp_path / "marker")}
    hosts = {
        "good": {**base, "role": "deployed"},
        "pool-int": {**base, "role": "deployed", "pool": 5},
        "role-banana": {**base, "role": "banana"},
        "no-role": dict(base),
        "min-disk-str": {**base, "role": "deployed", "min_disk_bytes": "20G"},
        "fix-str": {**base, "role": "deployed", "fix": "yes please"},
        "targets-str": {**base, "role": "deployed", "targets": "host1,host2"},
    }
    inventory = write_inventory(tmp_path / "inv.py", hosts)
    report_path = tmp_path / "report.json"
    done = run_pyinfra(inventory, "sweep.py", "--data", f"report={report_path}",
                       env={"KEYSTONE_CHECKS_DIR": str(E2E_CHECKS)})
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out[-3000:]
    report = read_report(report_path)
    by_name = {h["name"]: h for h in report["hosts"]}
    expected = {
        "pool-int": ("pool", "expected str, got int 5"),
        "role-banana": ("role", "'banana' is not one of"),
        "no-role": ("role", "missing"),
        "min-disk-str": ("min_disk_bytes", "expected int"),
        "fix-str": ("fix", "expected bool"),
        "targets-str": ("targets", "expected list"),
    }
    for name, (key, detail) in expected.items():
        entry = by_name[name]
        assert entry["status"] == "error", entry
        assert f"host {name}: host data '{key}'" in entry["error"] and detail in entry["error"], entry["error"]
        assert f"host {name}: host data '{key}'" in done.stdout, "the console names host and key too"
    assert by_name["good"]["status"] == "ok"
    good = {r["check"]: r for r in by_name["good"]["results"]}
    # A check needing host data the host lacks: an error naming the key, never a pass.
    assert good["needs-disk"]["outcome"] == "error" and "'disk' is undefined" in good["needs-disk"]["message"]
    assert report["summary"]["exit_code"] in (2, 3)
