"""The gate before the first reboot (docs/before-reboot.md) on a real installer guest.

nixos-anywhere `--phases kexec,disko,install` ends with the installer up, the new system's pool
imported at /mnt with its datasets and the ESP mounted there, and the credstore LUKS mapping open
(and mounted) from the install: the fault ``credstore-open-at-export`` on state ``installed`` is
exactly that. Its reboot phase would now run `zpool export -a || true` and reboot regardless. The
gate must catch it, repair it with the fixes, and leave the pool exported (importable without -f)
and the credstore closed, so that the reboot is safe; the data written at install stays intact.
"""

import json
import os
import subprocess
import sys

import pytest
from kc_helpers import REPO

pytestmark = pytest.mark.lab

CAUGHT = {"credstore-closed-before-export", "no-datasets-mounted-under-mnt"}
STATE = ("zpool list -H -o name rpool >/dev/null 2>&1; echo imported $?; "
         "cryptsetup status credstore >/dev/null 2>&1; echo credstore $?; "
         "findmnt -rn -o TARGET | grep -c -e '^/mnt$' -e '^/mnt/' || true")


def _gate(host, tmp_path, tag, *args):
    """`keystone-checks run before-reboot` against the guest: (exit code, results by check)."""
    path = tmp_path / f"{tag}.json"
    done = subprocess.run([sys.executable, "-m", "keystone_checks.frontends.cli", "run", "before-reboot",
                           "-i", str(host.inventory_path), "--report", f"json:{path}", *args],
                          capture_output=True, text=True, timeout=900, cwd=REPO, env=dict(os.environ),
                          stdin=subprocess.DEVNULL)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    report = json.loads(path.read_text())
    (entry,) = report["hosts"]
    assert entry["status"] == "ok", entry["error"]
    return done.returncode, {r["check"]: r for r in entry["results"]}, done


def _failing(results):
    return {c for c, r in results.items() if r["outcome"] in ("fail", "fix-failed", "error") and r["severity"] != "info"}


def test_gate_catches_and_repairs_the_install_left_by_nixos_anywhere(lab_host, lab_zfs, tmp_path):
    host = lab_host(fault="credstore-open-at-export", zfs=lab_zfs)
    rc, out, err = host.ssh(STATE)
    assert rc == 0, err
    lines = out.split("\n")
    assert lines[0] == "imported 0" and lines[1] == "credstore 0" and int(lines[2]) >= 3, out  # /mnt, /mnt/boot, ...

    code, before, done = _gate(host, tmp_path, "before")
    assert _failing(before) == CAUGHT, {c: r["message"] for c, r in before.items() if c in _failing(before) ^ CAUGHT}
    assert code == 2, done.stdout[-2000:]  # critical: not safe to reboot

    checksum = host.checksum()
    code, dry, done = _gate(host, tmp_path, "dry", "--fix", "--dry")
    for check in CAUGHT:
        assert dry[check]["outcome"] == "would-fix" and dry[check]["fix"]["commands"], dry[check]
    assert host.ssh(STATE)[1] == out, "--dry changed the guest"
    assert host.checksum() == checksum

    code, fixed, done = _gate(host, tmp_path, "fix", "--fix")
    for check in CAUGHT:
        assert fixed[check]["outcome"] == "fixed", (fixed[check]["message"], done.stdout[-3000:])
    rc, now, err = host.ssh(STATE)
    assert now.split("\n")[:3] == ["imported 1", "credstore 4", "0"], now  # exported, closed, nothing under /mnt

    code, after, done = _gate(host, tmp_path, "after")
    assert not _failing(after), {c: after[c]["message"] for c in _failing(after)}
    assert after["pool-exported-cleanly"]["outcome"] == "pass", after["pool-exported-cleanly"]
    assert code == 0, done.stdout[-2000:]  # the gate's answer: safe to reboot
    assert host.checksum() == host.expected_checksum, "data written at install changed"
