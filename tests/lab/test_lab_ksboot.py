"""The Keystone-shaped guest (keystone_checks/lab/ksboot.py, docs/lab.md "Keystone-shaped guest"):
it boots through OVMF, systemd-boot and a dracut systemd initrd running Keystone's own units, and
the product's sweep finds it healthy.

Marked ``ksboot`` as well as ``lab``: building the disk costs ≈12 min of TCG and each boot 2-3
min, so it runs with ``pytest -m ksboot`` (KC_LAB_BUILD=1 builds the disk), not in CI's lab run
yet (see README "The lab" for the budget)."""

from __future__ import annotations

import os
import re

import pytest
from kc_helpers import LAB_DATA, read_report, run_pyinfra

from keystone_checks.lab import inventory, ksboot, recipe
from keystone_checks.lab.errors import LabError

pytestmark = [pytest.mark.lab, pytest.mark.ksboot]


# Keystone's stage 1, in the order storage.nix (v0.2.0 l.79-172) requires; each pattern is
# systemd's own journal line for that step (`journalctl -b -o cat`, the initrd's journal is
# carried into stage 2 under /run/log/journal).
INITRD_ORDER = [
    ("pool imported", r"Finished import-rpool-bare\.service"),
    ("credstore opened", r"Finished systemd-cryptsetup@credstore\.service"),
    ("credstore mounted", r"Mounted etc-credstore\.mount"),
    ("key loaded", r"Finished rpool-load-key\.service"),
    ("root mounted", r"Mounted sysroot\.mount"),
    ("credstore unmounted", r"Unmounted etc-credstore\.mount"),
    ("credstore closed", r"Stopped systemd-cryptsetup@credstore\.service"),
    ("switch-root", r"Switching root\."),
]


@pytest.fixture(scope="module")
def ks_guest(tmp_path_factory):
    variant = recipe.VARIANTS[os.environ.get("KC_LAB_ZFS", "zfs21").split(",")[0]]
    try:
        g = ksboot.boot_for_tests(variant, tmp_path_factory.mktemp("ksboot") / "guest",
                                  os.environ.get("KC_LAB_BUILD") == "1")
    except LabError as e:
        pytest.fail(str(e), pytrace=False)
    yield g
    g.kill()


def _ssh(g, cmd: str) -> str:
    rc, out, err = g.ssh(cmd, timeout=120)
    assert rc == 0, f"{cmd}: {err}"
    return out


def test_stage1_runs_keystones_units_in_order(ks_guest):
    journal = _ssh(ks_guest, "journalctl -b -o cat --no-pager")
    positions = []
    for what, pattern in INITRD_ORDER:
        m = re.search(pattern, journal, re.M)
        assert m, f"{what}: no '{pattern}' in this boot's journal"
        positions.append((m.start(), what))
    assert positions == sorted(positions), f"stage 1 out of Keystone's order: {[w for _, w in sorted(positions)]}"
    assert "has valid encryptionroot \"rpool/crypt\"" in journal


def test_stage2_looks_like_a_keystone_host(ks_guest):
    mounts = {line.split()[1]: line.split()[:3] for line in _ssh(ks_guest, "cat /proc/mounts").splitlines()}
    assert mounts["/"][0::2] == ["rpool/crypt/system", "zfs"]
    assert mounts["/nix"][0::2] == ["rpool/crypt/system/nix", "zfs"]
    assert mounts["/var"][0::2] == ["rpool/crypt/system/var", "zfs"]
    assert mounts["/boot"][2] == "vfat"
    assert "/etc/credstore" not in mounts
    # The credstore is closed before switch-root: stage 2 never has it open.
    rc, _, _ = ks_guest.ssh("test -e /dev/mapper/credstore", timeout=30)
    assert rc == 1
    assert _ssh(ks_guest, "zfs get -H -o value keystatus rpool/crypt").strip() == "available"
    cmdline = _ssh(ks_guest, "cat /proc/cmdline")
    init = re.search(r"\binit=(/nix/store/[a-z0-9]{32}-nixos-system-[^ ]+)/init\b", cmdline)
    assert init, cmdline
    assert _ssh(ks_guest, "readlink /run/booted-system").strip() == init.group(1)
    entries = _ssh(ks_guest, "ls /boot/loader/entries").split()
    assert entries == ["nixos-generation-1.conf", "nixos-generation-2.conf", "nixos-generation-3.conf"]
    assert "ID=nixos" in _ssh(ks_guest, "cat /etc/os-release").splitlines()


def test_sweep_finds_the_keystone_guest_healthy(ks_guest, tmp_path):
    inv = inventory.write(tmp_path / "inventory.py", [("ksboot", ksboot.host_data(ks_guest))])
    report = tmp_path / "sweep.json"
    done = run_pyinfra(inv, "sweep.py", *LAB_DATA, "--data", f"report={report}", timeout=900)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    (entry,) = read_report(report)["hosts"]
    assert entry["status"] == "ok", entry["error"]
    bad = {r["check"]: r.get("found") for r in entry["results"]
           if r["outcome"] in ("fail", "error") and r["severity"] != "info"}
    assert bad == {}, bad
