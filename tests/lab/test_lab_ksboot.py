"""The Keystone-shaped guest (keystone_checks/lab/ksboot.py, docs/lab.md "Keystone-shaped guest"):
it boots through OVMF, systemd-boot and a dracut systemd initrd running Keystone's own units, and
the product's sweep finds it healthy (systemd-boot entries; the lanzaboote-style UKI flavour is
tested in test_lab_ksboot_reboot.py, first in the chain whose fault needs it).

Marked ``ksboot`` as well as ``lab`` (``pytest -m ksboot`` selects the Keystone-shaped guest
alone; KC_LAB_BUILD=1 builds its disk, ≈ 15 min of TCG, and its running state). The guest is a
copy of the saved running state: the journal read here is that boot's."""

from __future__ import annotations

import json
import os
import re

import pytest
from kc_helpers import failing, guest_out, lab_playbook

from keystone_checks.lab import ksboot, recipe
from keystone_checks.lab.errors import LabError
from keystone_checks.lab.reboot_faults import _CLOSE_CREDSTORE, _OPEN_CREDSTORE

# One guest for the module: under `--dist loadgroup` one worker runs it all (tests/conftest.py).
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


def test_stage1_runs_keystones_units_in_order(ks_guest):
    journal = guest_out(ks_guest, "journalctl -b -o cat --no-pager")
    positions = []
    for what, pattern in INITRD_ORDER:
        m = re.search(pattern, journal, re.M)
        assert m, f"{what}: no '{pattern}' in this boot's journal"
        positions.append((m.start(), what))
    assert positions == sorted(positions), f"stage 1 out of Keystone's order: {[w for _, w in sorted(positions)]}"
    assert "has valid encryptionroot \"rpool/crypt\"" in journal


def test_stage2_looks_like_a_keystone_host(ks_guest):
    mounts = {line.split()[1]: line.split()[:3] for line in guest_out(ks_guest, "cat /proc/mounts").splitlines()}
    assert mounts["/"][0::2] == ["rpool/crypt/system", "zfs"]
    assert mounts["/nix"][0::2] == ["rpool/crypt/system/nix", "zfs"]
    assert mounts["/var"][0::2] == ["rpool/crypt/system/var", "zfs"]
    assert mounts["/boot"][2] == "vfat"
    assert "/etc/credstore" not in mounts
    # The credstore is closed before switch-root: stage 2 never has it open.
    rc, _, _ = ks_guest.ssh("test -e /dev/mapper/credstore", timeout=30)
    assert rc == 1
    assert guest_out(ks_guest, "zfs get -H -o value keystatus rpool/crypt").strip() == "available"
    cmdline = guest_out(ks_guest, "cat /proc/cmdline")
    init = re.search(r"\binit=(/nix/store/[a-z0-9]{32}-nixos-system-[^ ]+)/init\b", cmdline)
    assert init, cmdline
    assert guest_out(ks_guest, "readlink /run/booted-system").strip() == init.group(1)
    entries = guest_out(ks_guest, "ls /boot/loader/entries").split()
    assert entries == ["nixos-generation-1.conf", "nixos-generation-2.conf", "nixos-generation-3.conf"]
    assert "ID=nixos" in guest_out(ks_guest, "cat /etc/os-release").splitlines()


def test_sweep_finds_the_keystone_guest_healthy(ks_guest, tmp_path):
    entry = lab_playbook(("ksboot", ksboot.host_data(ks_guest)), tmp_path, "sweep", "sweep.py")
    assert entry["status"] == "ok", entry["error"]
    assert failing(entry) == {}
    # The opt-in look inside the closed credstore ran (the lab inventory holds the passphrase, as an
    # operator who opts in sets it) and left nothing open.
    outcomes = {r["check"]: r["outcome"] for r in entry["results"]}
    assert outcomes["next-boot-credstore-key"] == "pass"
    assert guest_out(ks_guest, "ls /dev/mapper").split() == ["control"]


def _credstore_key(ks_guest, tmp_path, tag, **data) -> dict:
    entry = lab_playbook(("ksboot", {**ksboot.host_data(ks_guest), **data}), tmp_path, tag, "sweep.py",
                         "checks=next-boot-credstore-key")
    assert entry["status"] == "ok", entry["error"]
    (result,) = [r for r in entry["results"] if r["check"] == "next-boot-credstore-key"]
    assert guest_out(ks_guest, "ls /dev/mapper").split() == ["control"], "the check closed what it opened"
    return result


def test_credstore_key_check_fails_on_a_passphrase_that_does_not_open_it(ks_guest, tmp_path):
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not-the-passphrase\n")
    wrong.chmod(0o600)
    result = _credstore_key(ks_guest, tmp_path, "wrong-pass", luks_passphrase_file=str(wrong))
    assert result["outcome"] == "fail", result
    assert "No key available with this passphrase" in json.dumps(result)


def test_credstore_key_check_fails_on_a_key_file_that_is_not_the_pools_key(ks_guest, tmp_path):
    """The key file present but another key (overwritten on the running host): only ZFS can tell,
    with `zfs load-key -n` against the real encryption root. Restored afterwards (one guest per
    module); the key stays loaded throughout, as on a real host."""
    def swap(body: str) -> None:  # the reboot faults' own open/close of the credstore, with the guest's key file
        rc, _, err = ks_guest.run_script(f"set -eu\n{_OPEN_CREDSTORE}{body}\n{_CLOSE_CREDSTORE}", timeout=120)
        assert rc == 0, err

    store = "/run/kc-fault-credstore"
    swap(f"cp -p {store}/zfs-sysroot.mount {store}/saved; head -c 32 /dev/urandom > {store}/zfs-sysroot.mount")
    try:
        result = _credstore_key(ks_guest, tmp_path, "other-key")
    finally:
        swap(f"mv {store}/saved {store}/zfs-sysroot.mount")
    assert result["outcome"] == "fail", result
    assert "Incorrect key provided" in json.dumps(result)
    assert _credstore_key(ks_guest, tmp_path, "restored")["outcome"] == "pass"


def test_nixos_user_space(ks_guest):
    """What nixpkgs' modules put where the checks look (guest/ksboot/stage2/)."""
    rules = guest_out(ks_guest, "iptables -S")
    for line in ("-N nixos-fw", "-N nixos-fw-accept", "-N nixos-fw-log-refuse", "-N nixos-fw-refuse",
                 "-A INPUT -j nixos-fw", "-A nixos-fw -p tcp -m tcp --dport 22 -j nixos-fw-accept"):
        assert line in rules.splitlines(), (line, rules)
    assert guest_out(ks_guest, "nft list tables 2>/dev/null | grep -c 'table inet filter' || true").strip() == "0"
    # root logs in with the key from /etc/ssh/authorized_keys.d/root (NixOS users.users.*.openssh):
    # there is no ~/.ssh/authorized_keys.
    assert guest_out(ks_guest, "test -e /root/.ssh/authorized_keys; echo $?").strip() == "1"
    assert "/etc/ssh/authorized_keys.d/%u" in guest_out(ks_guest, "sshd -T | grep -i '^authorizedkeysfile'").split()
    profile = guest_out(ks_guest, "readlink /nix/var/nix/profiles/system").strip()
    assert profile == "system-3-link", profile
    assert guest_out(ks_guest, "readlink -f /nix/var/nix/profiles/system") == guest_out(ks_guest, "readlink -f /run/current-system")
    assert guest_out(ks_guest, "od -An -tx4 /nix/var/nix/profiles/system/etc/hostid") == guest_out(ks_guest, "od -An -tx4 /etc/hostid")
