"""Guarantee: one run over a mixed inventory of bad hosts (does not resolve, refuses connections,
times out, rejects our key, changed host key, unknown host key under strict checking) reports
each bad host with its own distinct reason, the healthy hosts complete their sweep, exit code 3.
Host-key policy: a changed (or unrecorded) key is refused, never silently accepted.
"""

from __future__ import annotations

import runpy
import socket
import subprocess
from pathlib import Path

import pytest
from kc_helpers import REPO, Sshd, free_port, outcomes, read_report, run_pyinfra, write_inventory

PASS_CHECKS = Path(__file__).parent / "fixtures" / "safety" / "pass_checks"
FAST = {"timeout": 2, "banner_timeout": 2, "auth_timeout": 2}


def _sshd(root: Path, request) -> Sshd:
    server = Sshd(root)
    root.mkdir()
    server.start()
    request.addfinalizer(server.stop)
    return server


@pytest.mark.sshd
def test_mixed_bad_hosts_each_reported_distinctly(tmp_path, request):
    healthy = [_sshd(tmp_path / f"ok{i}", request) for i in range(2)]
    badkey = _sshd(tmp_path / "badkey", request)
    (badkey.root / "authorized_keys").write_text(  # a key that is not ours
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample other@host\n")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "impostor")], check=True)
    kind, key = (tmp_path / "impostor.pub").read_text().split()[:2]
    changed_kh = tmp_path / "changed_known_hosts"
    changed_kh.write_text(f"[127.0.0.1]:{healthy[0].port} {kind} {key}\n")
    empty_kh = tmp_path / "empty_known_hosts"
    empty_kh.write_text("")

    blackhole = socket.socket()  # accept queue of 0, filled: further SYNs are dropped -> connect times out
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(blackhole.getsockname())
        fillers.append(s)
    silent = socket.socket()  # accepts, never speaks SSH
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    request.addfinalizer(lambda: [s.close() for s in (blackhole, silent, *fillers)])

    def data(server, **extra):
        return {**server.host_data(), "role": "deployed", "installer_marker": str(tmp_path / "marker"),
                "ssh_paramiko_connect_kwargs": FAST, **extra}

    hosts = {
        "healthy-1": data(healthy[0]),
        "healthy-2": data(healthy[1]),
        "nowhere.invalid": {"role": "deployed", "ssh_user": "root", "ssh_paramiko_connect_kwargs": FAST,
                            "ssh_known_hosts_file": str(empty_kh)},
        "refusing": data(healthy[0], ssh_port=free_port()),
        "blackhole": data(healthy[0], ssh_port=blackhole.getsockname()[1]),
        "silent": data(healthy[0], ssh_port=silent.getsockname()[1]),
        "wrong-key": data(badkey),
        "key-changed": data(healthy[0], ssh_known_hosts_file=str(changed_kh)),
        "key-unknown": data(healthy[1], ssh_known_hosts_file=str(empty_kh)),
    }
    inventory = write_inventory(tmp_path / "inv.py", hosts)
    inventory.write_text("import keystone_checks.engine.connect_errors  # noqa: F401\n" + inventory.read_text())
    report_path = tmp_path / "report.json"
    done = run_pyinfra(inventory, "sweep.py", "--data", f"report={report_path}",
                       env={"KEYSTONE_CHECKS_DIR": str(PASS_CHECKS)}, timeout=120)
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out[-4000:]
    report = read_report(report_path)
    by_name = {h["name"]: h for h in report["hosts"]}
    assert set(by_name) == set(hosts), "every host is in the report"
    expected_kind = {"nowhere.invalid": "does-not-resolve", "refusing": "connection-refused",
                     "blackhole": "timed-out", "silent": "timed-out", "wrong-key": "auth-rejected",
                     "key-changed": "host-key-changed", "key-unknown": "host-key-unknown"}
    for name, kind_ in expected_kind.items():
        entry = by_name[name]
        assert entry["status"] == "unreachable", entry
        assert entry["error"].startswith(kind_ + ":"), (name, entry["error"])
    changed = by_name["key-changed"]["error"]
    assert "regenerates its host keys on every boot" in changed and "attack" in changed
    assert "Target Not Reachable" in by_name["blackhole"]["error"]
    assert "connection refused" in by_name["refusing"]["error"] and "sshd-running" in by_name["refusing"]["error"]
    for name in ("healthy-1", "healthy-2"):
        assert by_name[name]["status"] == "ok", by_name[name]
        got = outcomes(report, name)
        assert got == {"root-has-space": "pass"}, got
    assert report["summary"]["exit_code"] == 3, report["summary"]
    assert len(healthy[0].execs()) == 1 and len(healthy[1].execs()) == 1, "each healthy host ran its sweep once"


def test_example_inventory_host_key_policy():
    """Our example inventory: deployed servers demand the recorded key; installers (new key each
    boot) use a separate known_hosts with accept-new."""
    inv = runpy.run_path(str(REPO / "inventory" / "example.py"))
    for name, data in inv["deployed"]:
        assert data["ssh_strict_host_key_checking"] == "yes", name
    for name, data in inv["installer"]:
        assert data["ssh_strict_host_key_checking"] == "accept-new", name
        assert "installer" in data["ssh_known_hosts_file"]


def test_connect_failure_kinds_are_distinct_and_name_existing_checks():
    from keystone_checks.engine.catalog import load_catalog
    from keystone_checks.engine.connect_errors import classify

    ids = {c.id for c in load_catalog()}
    samples = {
        "does-not-resolve": "Could not resolve hostname ([Errno -2] Name or service not known)",
        "connection-refused": "Could not connect ([Errno None] Unable to connect to port 22 on 10.0.0.5)",
        "timed-out": "Could not connect (timed out)",
        "auth-rejected": "Authentication error (username=root, key=k) (Authentication failed.)",
        "host-key-changed": "SSH host key error (Host key for 10.0.0.5 does not match.)",
        "host-key-unknown": "SSH error (StrictPolicy: No host key for [10.0.0.5]:22 found in known_hosts)",
    }
    for kind, message in samples.items():
        failure = classify(message)
        assert failure.kind == kind, (message, failure)
        if failure.check:
            assert failure.check in ids, f"{kind} names check {failure.check}, which is not in the catalog"
