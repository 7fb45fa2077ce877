"""Guarantee: a LUKS passphrase given by host-data reference (controller file or env var) reaches
the host only on the command's stdin: a random canary passphrase is absent from pyinfra's stdout
and stderr at -vvv, from the JSON report and every report format, from the process arguments
(`ps -eo args`) on the host while the command runs, and from error messages.

Two ways in: a fix (luks.open_mapping: the operation's stdin) and a check (luks.CredstoreKey:
the one batched gather's stdin). Harness: stand-in `cryptsetup`, `zfs`, `mount` first on PATH
(sshd session and @local; tests/fake_luks_tools.py) that record their argv, the `ps -eo args`
table while `cryptsetup open` runs, and what it read on stdin. It proves the transport path; the
lab tests use the real tools.
"""

from __future__ import annotations

import json
import os
import secrets as pysecrets
import subprocess
import threading
from pathlib import Path

import pytest
from fake_luks_tools import fake_bin
from kc_helpers import Sshd, read_report, run_pyinfra, write_inventory

from keystone_checks.errors import KeystoneChecksError
from keystone_checks.secrets import Secret, SecretError, resolve_passphrase

SECRET_CHECKS = Path(__file__).parent / "fixtures" / "safety" / "secret_checks"

def test_resolve_errors_never_contain_the_secret(tmp_path, monkeypatch):
    canary = "kc-canary-" + pysecrets.token_hex(16)
    loose = tmp_path / "loose"
    loose.write_text(canary + "\n")
    loose.chmod(0o644)
    multi = tmp_path / "multi"
    multi.write_text(canary + "\nsecond line " + canary + "\n")
    multi.chmod(0o600)
    monkeypatch.setenv("KC_MULTI", canary + "\n" + canary)
    for kwargs in ({"passphrase_file": str(loose)}, {"passphrase_file": str(multi)}, {"passphrase_env": "KC_MULTI"},
                   {"passphrase_env": "KC_NOT_SET_" + canary}, {},
                   {"passphrase_file": str(multi), "passphrase_env": "KC_MULTI"}):
        with pytest.raises(SecretError) as info:
            resolve_passphrase(**kwargs)
        assert isinstance(info.value, KeystoneChecksError)
        assert canary not in str(info.value) or "KC_NOT_SET_" in str(info.value), str(info.value)
    good = tmp_path / "good"
    good.write_text(canary + "\n")
    good.chmod(0o600)
    value = resolve_passphrase(passphrase_file=str(good))
    assert value == canary and canary not in repr(value) and isinstance(value, Secret)


@pytest.mark.sshd
def test_canary_passphrase_only_on_stdin_in_a_full_vvv_run(tmp_path, request):
    canary = "kc-canary-" + pysecrets.token_hex(16)
    pass_file = tmp_path / "credstore.pass"
    pass_file.write_text(canary + "\n")
    pass_file.chmod(0o600)

    server = Sshd(tmp_path / "sshd")
    server.root.mkdir()
    server.start()
    request.addfinalizer(server.stop)
    remote_bin = fake_bin(tmp_path / "remote-bin")
    wrapper = server.root / "logexec.sh"  # the session's PATH: the fake cryptsetup first
    text = wrapper.read_text().replace("exec /bin/sh", f'PATH={remote_bin}:$PATH; export PATH; exec /bin/sh')
    wrapper.write_text(text)
    local_bin = fake_bin(tmp_path / "local-bin")
    for bin_dir in (remote_bin, local_bin):  # what the check's read-only look into the credstore finds
        (bin_dir / "passphrase").write_text(canary)
        (bin_dir / "right-key").write_text("the-key")
        (bin_dir / "credstore").mkdir()
        (bin_dir / "credstore" / "zfs-sysroot.mount").write_text("the-key")

    inventory = write_inventory(tmp_path / "inv.py", {
        "sshd-host": {**server.host_data(), "role": "deployed", "credstore_name": "credstore",
                      "luks_passphrase_file": str(pass_file)},
        "@local": {"role": "deployed", "credstore_name": "credstore", "luks_passphrase_env": "KC_TEST_PASSPHRASE"},
    })

    seen_args: list[str] = []
    stop = threading.Event()

    def sample_ps():  # the host's process table during the whole run (sshd and @local share this machine)
        while not stop.is_set():
            seen_args.append(subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout)
            stop.wait(0.02)

    sampler = threading.Thread(target=sample_ps, daemon=True)
    sampler.start()
    report_path = tmp_path / "reports" / "run.json"
    try:
        done = run_pyinfra(inventory, "sweep.py", "-vvv", "--data", "fix=true", "--data", f"report={report_path}",
                           env={"KEYSTONE_CHECKS_DIR": str(SECRET_CHECKS), "KC_TEST_PASSPHRASE": canary,
                                "PATH": f"{local_bin}:{os.environ['PATH']}"})
    finally:
        stop.set()
        sampler.join(5)

    report = read_report(report_path)
    results = {h["name"]: {r["check"]: r for r in h["results"]} for h in report["hosts"]}
    for host, bin_dir in (("sshd-host", remote_bin), ("@local", local_bin)):
        assert results[host]["safety-credstore-open"]["outcome"] == "fixed", (results[host], done.stderr[-3000:])
        # the gather's own stdin: the check opened the credstore read-only with it, and closed it
        assert results[host]["safety-credstore-key"]["outcome"] == "pass", results[host]["safety-credstore-key"]
        assert "open --readonly --type luks" in (bin_dir / "argv").read_text()
        assert "kc-credstore-verify" in (bin_dir / "closed").read_text()
        assert (bin_dir / "stdin").read_text() == canary, "cryptsetup got the passphrase on stdin"
        assert canary not in (bin_dir / "argv").read_text()
        assert "cryptsetup open" in (bin_dir / "ps-during-open").read_text(), "ps snapshot taken while it ran"
        assert canary not in (bin_dir / "ps-during-open").read_text()
    assert ">>>" in done.stderr + done.stdout or "Running command" in done.stderr + done.stdout, "-vvv shows commands"
    assert canary not in done.stdout and canary not in done.stderr
    assert seen_args and not any(canary in snapshot for snapshot in seen_args)
    for path in report_path.parent.rglob("*"):
        if path.is_file():
            assert canary not in path.read_text(errors="replace"), path
    from keystone_checks.reports import WRITERS, writer

    for name in WRITERS:
        assert canary not in writer(name)(report), f"report format {name}"
    assert canary not in json.dumps(report)


def test_a_check_whose_passphrase_cannot_be_resolved_is_an_error_and_the_rest_still_run(tmp_path):
    local_bin = fake_bin(tmp_path / "local-bin")
    inventory = write_inventory(tmp_path / "inv.py", {
        "@local": {"role": "deployed", "credstore_name": "credstore", "luks_passphrase_env": "KC_TEST_UNSET_VAR"},
    })
    report_path = tmp_path / "run.json"
    env = {k: v for k, v in os.environ.items() if k != "KC_TEST_UNSET_VAR"}
    run_pyinfra(inventory, "sweep.py", "--data", f"report={report_path}",
                env={**env, "KEYSTONE_CHECKS_DIR": str(SECRET_CHECKS), "PATH": f"{local_bin}:{os.environ['PATH']}"})
    results = {r["check"]: r for r in read_report(report_path)["hosts"][0]["results"]}
    key = results["safety-credstore-key"]
    assert key["outcome"] == "error"
    assert "luks_passphrase_env: environment variable KC_TEST_UNSET_VAR is not set" in json.dumps(key)
    assert results["safety-credstore-open"]["outcome"] == "fail", "the other probes ran in the same gather"
    assert not (local_bin / "argv").exists(), "nothing was opened"
