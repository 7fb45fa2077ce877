"""Faults that cut SSH itself, seen the way an operator meets them: from the controller.

The host-side matrix cannot sweep a host it cannot log into, so for these faults the operator's
machine (@local, role controller, the lab guest as its `targets` entry) runs the `network` phase,
and the check the guide names must be the one failing. The fix is the console (manual), so the test
stops there; the lab's control sshd (port 2222) confirms the fault really is present.

The lab's network is QEMU user-mode NAT: QEMU itself accepts every connection on the forwarded
port, so "refused" and "filtered" look, from the controller, like a connection that closes or stays
silent before the SSH banner. That is why a stopped sshd and a firewall drop are both caught here by
target-sshd-answers; telling refused, filtered and timed-out ports apart is proven against real
sockets in tests/test_safety_bad_hosts.py and by the network facts' fixtures.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from kc_helpers import read_report, run_pyinfra, write_inventory

from keystone_checks.engine.catalog import load_catalog

pytestmark = pytest.mark.lab

CAUGHT_BY = {
    "sshd-stopped": {"target-sshd-answers"},
    "firewall-drops-ssh": {"target-sshd-answers"},  # user-mode NAT: see the module docstring
    "root-key-missing": {"target-ssh-key-accepted"},
    "root-key-mangled": {"target-ssh-key-accepted"},
}


@pytest.mark.parametrize("fault_name", sorted(CAUGHT_BY))
def test_ssh_fault_is_caught_from_the_controller(lab_host, fault_name, tmp_path):
    host = lab_host(fault=fault_name)
    assert host.fault_present(), "verified over the lab's control sshd"
    if host.fault.control:  # the guest's own sshd path is cut; the lab's control channel is not
        assert host.ssh_answers() == (False, True)
    known_hosts = tmp_path / "known_hosts"  # the lab's own host key entries; never ~/.ssh
    shutil.copy(host.clone.known_hosts, known_hosts)
    target = {"name": host.name, "address": "127.0.0.1", "port": host.clone.port, "user": "root",
              "identity_file": str(host.clone.key), "known_hosts_file": str(known_hosts)}
    inventory = write_inventory(tmp_path / "controller.py", {"@local": {
        "role": "controller", "targets": [target], "ssh_public_key_file": f"{host.clone.key}.pub"}})
    report_path = tmp_path / "network.json"
    done = run_pyinfra(inventory, "network.py", "--data", f"report={report_path}", timeout=300)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    (entry,) = read_report(report_path)["hosts"]
    results = {r["check"]: r for r in entry["results"]}
    failing = {c for c, r in results.items() if r["outcome"] in ("fail", "error") and r["severity"] != "info"}
    assert failing == CAUGHT_BY[fault_name], {c: results[c]["message"] for c in failing | CAUGHT_BY[fault_name]}
    manual = {c.id: c.fix.manual if c.fix else None for c in load_catalog()}
    for check_id in CAUGHT_BY[fault_name]:
        assert manual[check_id], "the remedy is the console: the check says how"
    if os.environ.get("KC_MATRIX_OUT"):  # a row of docs/lab-matrix.md, like the host-side faults
        row = {"zfs": host.variant.name, "fault": fault_name, "phase": "network (from the controller)",
               "caught_by": sorted(CAUGHT_BY[fault_name]), "fix": "manual"}
        with open(os.environ["KC_MATRIX_OUT"], "a") as out:
            out.write(json.dumps(row) + "\n")
