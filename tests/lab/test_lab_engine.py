"""The engine against a real deployed lab guest: the real pyinfra CLI sweep, one fault injected,
the exact check tripping, the fix playbook repairing it (the start of the fault matrix)."""

import pytest
from kc_helpers import outcomes, read_report, run_pyinfra

pytestmark = pytest.mark.lab


def test_credstore_open_caught_and_fixed_on_installed_pool(lab_host, lab_zfs, tmp_path):
    host = lab_host("installed", zfs=lab_zfs)
    host.inject("credstore-open-at-export")
    before = tmp_path / "before.json"
    run_pyinfra(host.inventory_path, "deployment.py", "--data", f"report={before}", timeout=600)
    report = read_report(before)
    got = outcomes(report, host.name)
    assert got["credstore-closed-before-export"] == "fail", got
    fixed = tmp_path / "fixed.json"
    done = run_pyinfra(host.inventory_path, "fix/close-credstore-export.py", "--data", f"report={fixed}", timeout=600)
    got = outcomes(read_report(fixed), host.name)
    assert got["credstore-closed-before-export"] == "fixed", (got, done.stdout[-2000:])
    rc, out, _ = host.ssh("zpool list -H -o name rpool 2>&1; cryptsetup status credstore | head -1", timeout=60)
    assert "no such pool" in out and "inactive" in out
