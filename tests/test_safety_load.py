"""Guarantee: a 100-host sweep (the benchmark's fleet: 100 real sshd hosts) with a few hosts
failing (sshd stopped, so the connection is accepted by the fleet's proxy and then closed; one
port refusing) finishes, reports every host, and no result of one host shows up under another:
each host's host data names its own marker file whose size is unique to the host, and each
host's evidence must carry exactly that size.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from kc_helpers import REPO, free_port, read_report, run_pyinfra

LOAD_CHECKS = Path(__file__).parent / "fixtures" / "safety" / "load_checks"
N = 100
STOPPED = {7, 42, 77}

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.skipif(os.geteuid() != 0, reason="the fleet needs root"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) missing"),
]


def test_hundred_host_sweep_with_failures_keeps_results_apart(tmp_path):
    sys.path.insert(0, str(REPO))
    from bench.fleet import Fleet

    markers = tmp_path / "markers"
    markers.mkdir()
    with Fleet(N, rtt_ms=0, workdir=str(tmp_path / "fleet")) as fleet:
        hosts = {}
        for i, (name, data) in enumerate(fleet.host_vars()):
            marker = markers / f"marker-{name}"
            marker.write_bytes(b"x" * (i + 1))
            hosts[name] = {**data, "role": "deployed", "installer_marker": str(marker),
                           "ssh_paramiko_connect_kwargs": {"timeout": 5, "banner_timeout": 5, "auth_timeout": 5}}
        refusing = fleet.host_vars()[3][0]
        hosts[refusing]["ssh_port"] = free_port()
        for i in STOPPED:  # the proxy still accepts; the host behind it is gone
            fleet._sshd[i].terminate()
            fleet._sshd[i].wait(5)
        lines = ["import keystone_checks.engine.connect_errors  # noqa: F401", "fleet = ["]
        lines += [f"    ({name!r}, {data!r})," for name, data in hosts.items()]
        inventory = tmp_path / "inv.py"
        inventory.write_text("\n".join(lines + ["]"]) + "\n")
        report_path = tmp_path / "report.json"
        started = time.monotonic()
        done = run_pyinfra(inventory, "sweep.py", "--data", f"report={report_path}",
                           env={"KEYSTONE_CHECKS_DIR": str(LOAD_CHECKS)}, timeout=90)
        elapsed = time.monotonic() - started
    assert "Traceback" not in done.stdout + done.stderr
    report = read_report(report_path)
    by_name = {h["name"]: h for h in report["hosts"]}
    assert set(by_name) == set(hosts), "every host is reported"
    failed = {f"{fleet.name_prefix}{i + 1:03d}" for i in STOPPED} | {refusing}
    for i, name in enumerate(hosts):
        entry = by_name[name]
        if name in failed:
            assert entry["status"] == "unreachable" and entry["error"], entry
            assert not entry["results"]
            continue
        assert entry["status"] == "ok", entry
        (result,) = entry["results"]
        assert result["outcome"] == "pass"
        assert result["evidence"]["marker"]["size"] == i + 1, (name, result["evidence"])
    assert by_name[refusing]["error"].startswith("connection-refused")
    assert report["summary"]["hosts"] == N and report["summary"]["exit_code"] == 3
    assert elapsed < 60, f"100-host sweep took {elapsed:.1f}s"
