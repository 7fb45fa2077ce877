"""Faults that only bite at the next boot, each run through a real reboot of the Keystone-shaped
guest (keystone_checks/lab/reboot_faults.py has the faults and what the catalog should say).

Per fault: data checksums -> inject (on the running host, or on the installer booted with the disk)
-> the sweep (or before-reboot on the installer) BEFORE the reboot catches it -> reset -> the boot
stops where the fault bites (the initrd's or boot loader's own console line) or falls back ->
`keystone-checks run` reports the host (unreachable, with the reason) -> the installer boots with
that very disk -> the recovery names the cause and repairs it where a fix exists, leaving the
installer's own root untouched -> the host boots healthy again, its data intact.

A row per fault that passed every step goes to KC_MATRIX_OUT (`python -m keystone_checks.lab
table` renders them after the Debian matrix; docs/lab.md has the last results). The guest is
reused from one fault to the next while it is healthy (a boot under TCG costs 2-4 min); after a
fault with no fix the next one starts from a fresh copy of the saved running state
(ksboot.restore, ≈ 10 s). Every reboot a fault makes is a real one."""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from kc_helpers import EXIT_UNKNOWN, LAB_DATA, LAB_LIVE_ROOT_LISTING, failing, guest_out, lab_playbook, read_report

from keystone_checks.lab import inventory, ksboot, recipe, snapshot
from keystone_checks.lab.errors import LabError
from keystone_checks.lab.reboot_faults import REBOOT_FAULTS, RebootFault

pytestmark = [pytest.mark.lab, pytest.mark.ksboot]

DATA_FILES = "/var/lib/lab-data.bin /boot/lab-data.bin /root/lab-data.bin"  # guest/ksboot/build.sh


class Chain:
    """The deployed guest, carried from one fault to the next while it is healthy."""

    def __init__(self, variant: recipe.Variant, root: Path):
        self.variant, self.root = variant, root
        self.guest: ksboot.UefiGuest | None = None
        self.flavour = "entries"
        self.healthy = False
        self.others: list = []

    def guest_for(self, fault: RebootFault) -> ksboot.UefiGuest:
        if self.guest is None or not self.healthy or (self.flavour == "uki" and fault.flavour != "uki"):
            self.kill()
            try:
                self.guest = ksboot.boot_for_tests(self.variant, self.root / f"{fault.name}-guest",
                                                   os.environ.get("KC_LAB_BUILD") == "1")
            except LabError as e:
                pytest.fail(str(e), pytrace=False)
            self.flavour = "entries"
        g = self.guest
        if fault.flavour == "uki" and self.flavour != "uki":
            self.to_uki()
        self.healthy = False  # until this fault's cycle ends with a healthy boot
        return g

    def to_uki(self) -> ksboot.UefiGuest:
        """Turn the running guest into the lanzaboote-style flavour (guest/ksboot/to-uki.sh) and
        reboot into it: one UKI per generation in EFI/Linux/ (lanzaboote's names), no entries."""
        g = self.guest
        assert g is not None
        rc, _, err = g.ssh("sh /usr/share/keystone-lab/ksboot/to-uki.sh", timeout=300)
        assert rc == 0, err
        since = len(g.serial())
        g.reboot()
        assert ksboot.boot_outcome(g, since=since) is None, "the UKI flavour did not boot"
        self.flavour = "uki"
        return g

    def installer(self, name: str):
        assert self.guest is not None
        inst = ksboot.installer_on(self.guest.disks["vda"], self.variant, self.root / name)
        self.others.append(inst)
        return inst

    def kill(self) -> None:
        for g in [self.guest, *self.others]:
            if g is not None:
                g.kill()
        self.guest, self.others = None, []


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    c = Chain(recipe.VARIANTS[os.environ.get("KC_LAB_ZFS", "zfs21").split(",")[0]],
              tmp_path_factory.mktemp("ksreboot"))
    yield c
    c.kill()


def _sums(g) -> str:
    return guest_out(g, f"sha256sum {DATA_FILES}")


def _installer_host(inst, chain: Chain) -> tuple[str, dict]:
    return ("ksinst", {**ksboot.host_data(inst), "role": "installer",
                       "luks_passphrase_file": str(snapshot.passphrase_file(chain.variant))})


def _controller_run(g, tmp_path: Path) -> dict:
    """`keystone-checks run` (pyinfra's CLI writes no report when no host connects)."""
    inv = inventory.write(tmp_path / "after-inventory.py", [("ksboot", ksboot.host_data(g))])
    report = tmp_path / "after.json"
    done = subprocess.run([str(Path(sys.executable).parent / "keystone-checks"), "run", "-i", str(inv), "sweep",
                           *LAB_DATA, "--connect-timeout", "20", "--report", f"json:{report}"],
                          capture_output=True, text=True, timeout=900)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    (after,) = read_report(report)["hosts"]
    return {**after, "exit_code": done.returncode}


def test_lanzaboote_style_flavour_boots_and_sweeps_healthy(chain: Chain, tmp_path):
    """The second flavour: one UKI per generation in EFI/Linux/ (lanzaboote's names), no entries;
    systemd-boot boots the newest. Here, first in its chain, because `next-boot-uki-missing`
    starts from it (one conversion and reboot for both)."""
    g = chain.guest_for(RebootFault(name="uki-flavour", description="", guide="", flavour="uki"))
    assert guest_out(g, "ls -A /boot/loader/entries /boot/EFI/nixos 2>&1 | grep -v '^/boot/loader/entries:$'") \
        == "ls: cannot access '/boot/EFI/nixos': No such file or directory\n"
    ukis = guest_out(g, "ls /boot/EFI/Linux").split()
    assert [re.sub(r"-[a-z0-9]{52}\.efi$", "-HASH.efi", u) for u in ukis] == \
        [f"nixos-generation-{n}-HASH.efi" for n in (1, 2, 3)], ukis
    # A UKI boot: the command line is the UKI's own .cmdline (systemd-boot prefixes `initrd=` only
    # for a Type #1 entry's initrd, as the entries flavour's /proc/cmdline shows), and the
    # generation is the profile's newest; no entry or EFI/nixos file is left to boot from.
    cmdline = guest_out(g, "cat /proc/cmdline")
    assert "initrd=" not in cmdline, cmdline
    newest = guest_out(g, "readlink -f /nix/var/nix/profiles/system-3-link").strip()
    assert f"init={newest}/init" in cmdline.split(), (cmdline, newest)
    assert guest_out(g, "readlink -f /run/booted-system").strip() == newest
    entry = lab_playbook(("ksboot", ksboot.host_data(g)), tmp_path, "sweep-uki", "sweep.py")
    assert entry["status"] == "ok", entry["error"]
    assert failing(entry) == {}
    (gen,) = [r for r in entry["results"] if r["check"] == "next-boot-generation-on-esp"]
    assert gen["outcome"] == "pass", gen
    chain.healthy = True


# The UKI flavour's faults run after its test, on its worker (reboot_faults.UKI_CHAIN), in this order.
@pytest.mark.parametrize("fault", REBOOT_FAULTS, ids=[f.name for f in REBOOT_FAULTS])
def test_fault_through_a_reboot(fault: RebootFault, chain: Chain, tmp_path):
    assert fault.caught_before or fault.gap, f"{fault.name}: no expectation and no gap written down"
    g = chain.guest_for(fault)
    races_before = len(g.race_resets)
    sums = _sums(g)

    # 1. the fault, and what the product said BEFORE the reboot
    if fault.inject:
        rc, _, err = g.run_script(fault.inject, timeout=600)
        assert rc == 0, err
        before = lab_playbook(("ksboot", ksboot.host_data(g)), tmp_path, "before", fault.before_playbook)
    else:
        ksboot.power_off(g)
        inst = chain.installer(f"{fault.name}-inject")
        rc, _, err = inst.run_script(fault.inject_on_installer, timeout=600)
        assert rc == 0, err
        before = lab_playbook(_installer_host(inst, chain), tmp_path, "before", fault.before_playbook)
        inst.kill()  # a reboot of the ISO: nothing exported
    assert before["status"] == "ok", before["error"]
    caught = sorted(failing(before))
    assert set(fault.caught_before) <= set(caught), (fault.caught_before, failing(before))

    # 2. the reboot, and where it stops
    if g.alive():
        since = len(g.serial())
        g.reboot()
    else:
        since = 0
        g.start()
    stop = ksboot.boot_outcome(g, since=since)
    if fault.stop:
        assert stop and re.search(fault.stop, stop), f"boot outcome {stop!r}, expected /{fault.stop}/"
    else:
        assert stop is None, f"expected the boot to fall back to stage 2; it stopped: {stop}"

    # 3. what the controller says after it
    after = _controller_run(g, tmp_path)
    if fault.stop:
        assert after["exit_code"] == EXIT_UNKNOWN and after["status"] == "unreachable", after
        assert "no SSH banner" in json.dumps(after), after  # the port is forwarded; nothing answers
        after_caught: list[str] = []
    else:
        after_caught = sorted(failing(after))
        assert set(fault.caught_after) <= set(after_caught), (fault.caught_after, after_caught)

    # 4. recovery from the installer booted with that disk
    recovery: dict = {}
    if fault.recovery:
        g.kill()
        inst = chain.installer(f"{fault.name}-recovery")
        rc, live_before, err = inst.ssh(LAB_LIVE_ROOT_LISTING)
        assert rc == 0, err
        entry = lab_playbook(_installer_host(inst, chain), tmp_path, "recovery", fault.recovery,
                             *fault.recovery_data)
        results = {r["check"]: r for r in entry["results"]}
        recovery = {c: results[c]["outcome"] for c in fault.recovery_outcomes if c in results}
        assert recovery == fault.recovery_outcomes, {c: results.get(c) for c in fault.recovery_outcomes}
        assert fault.recovery_says in json.dumps(entry), entry
        rc, out, err = inst.ssh("test -e /dev/mapper/credstore; echo mapped $?")
        assert out.split() == ["mapped", "1"], "the recovery left the credstore open"
        rc, live_after, err = inst.ssh(LAB_LIVE_ROOT_LISTING)
        changed = list(difflib.unified_diff(live_before.splitlines(), live_after.splitlines(), lineterm="", n=0))
        assert rc == 0 and not changed, f"the recovery changed the installer's own root: {changed[:20]}"
        ksboot.power_off(inst)
        if fault.repaired:
            g.start()
            assert ksboot.boot_outcome(g) is None, "the repaired host did not boot"
            healthy = lab_playbook(("ksboot", ksboot.host_data(g)), tmp_path, "healthy", "sweep.py")
            assert failing(healthy) == {}, failing(healthy)
            assert _sums(g) == sums, "data written before the fault changed"
            chain.healthy = True

    row = {"kind": "reboot", "fault": fault.name, "zfs": chain.variant.name, "flavour": fault.flavour,
           "before": caught, "stop": stop, "after": after["status"], "after_caught": after_caught,
           "after_error": after.get("error"), "recovery": recovery, "repaired": chain.healthy,
           "race_resets": g.race_resets[races_before:]}
    if os.environ.get("KC_MATRIX_OUT"):
        with open(os.environ["KC_MATRIX_OUT"], "a") as fh:
            fh.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=2))
