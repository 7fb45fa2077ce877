"""A fault that only bites at the next boot, run through a real reboot of the Keystone-shaped
guest (keystone_checks/lab/ksboot.py): the credstore loses the pool's key file while the host
runs. Stage 2 never reads that file (the key was loaded in the initrd, and the credstore is
closed), so the host stays healthy until it reboots; then Keystone's `rpool-load-key.service`
fails in the initrd and the boot stops there.

What is recorded (KC_LAB_REBOOT_OUT, JSON lines; printed too): what the sweep said BEFORE the reboot,
why the boot stopped (the initrd's own console line) and what the controller said after it.
Measured 2026-12-01: the sweep before the reboot catches nothing (only the info-level TPM checks):
no check looks inside a closed credstore on a running host, a gap docs/lab.md records. Then the
installer boots with that disk: the recovery names the cause (the key file is missing; no fix
exists for a lost key) and leaves the credstore closed and the installer's own root untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kc_helpers import EXIT_UNKNOWN, LAB_DATA, LAB_LIVE_ROOT, read_report, run_pyinfra

from keystone_checks.lab import inventory, ksboot, recipe, snapshot
from keystone_checks.lab.errors import LabError

pytestmark = [pytest.mark.lab, pytest.mark.ksboot]

# Opens the credstore with the lab's initrd key slot, removes the key file, closes it again.
REMOVE_KEY_FILE = """set -eu
cryptsetup open --key-file /etc/keystone-lab/credstore.key /dev/zvol/rpool/credstore credstore
mkdir -p /run/kc-fault-credstore
mount /dev/mapper/credstore /run/kc-fault-credstore
rm /run/kc-fault-credstore/zfs-sysroot.mount
umount /run/kc-fault-credstore
cryptsetup close credstore
sync
"""


def _sweep(g, tmp_path, tag):
    inv = inventory.write(tmp_path / f"{tag}-inventory.py", [("ksboot", ksboot.host_data(g))])
    report = tmp_path / f"{tag}.json"
    done = run_pyinfra(inv, "sweep.py", *LAB_DATA, "--data", f"report={report}", timeout=900)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    (entry,) = read_report(report)["hosts"]
    return entry


def test_key_file_removed_stops_the_next_boot_in_the_initrd(tmp_path):
    variant = recipe.VARIANTS[os.environ.get("KC_LAB_ZFS", "zfs21").split(",")[0]]
    try:
        g = ksboot.boot_for_tests(variant, tmp_path / "guest", os.environ.get("KC_LAB_BUILD") == "1")
    except LabError as e:
        pytest.fail(str(e), pytrace=False)
    made = [g]
    try:
        rc, _, err = g.run_script(REMOVE_KEY_FILE, timeout=300)
        assert rc == 0, err
        before = _sweep(g, tmp_path, "before")
        assert before["status"] == "ok", before["error"]
        caught = sorted(r["check"] for r in before["results"]
                        if r["outcome"] in ("fail", "error") and r["severity"] != "info")

        offset = len(g.serial())
        g.reboot()
        t0 = time.monotonic()
        while "Entering emergency mode" not in g.serial()[offset:]:
            assert g.ssh_bytes("true", timeout=10)[0] != 0 or time.monotonic() - t0 < 30, \
                "the guest booted to stage 2 without its key file"
            assert time.monotonic() - t0 < ksboot.BOOT_TIMEOUT, "the next boot neither stopped nor came up"
            time.sleep(3)
        reason = ksboot.initrd_stop_reason(g.serial()[offset:])
        assert reason == "Failed to start rpool-load-key.service.", reason

        # Every host of this inventory is down: pyinfra's CLI stops before the playbook ("No hosts
        # remaining!", no report), so the sweep runs as `keystone-checks run`, which reports it.
        inv = inventory.write(tmp_path / "after-inventory.py", [("ksboot", ksboot.host_data(g))])
        report = tmp_path / "after.json"
        done = subprocess.run([str(Path(sys.executable).parent / "keystone-checks"), "run", "-i", str(inv), "sweep",
                               *LAB_DATA, "--connect-timeout", "20", "--report", f"json:{report}"],
                              capture_output=True, text=True, timeout=600)
        assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
        assert done.returncode == EXIT_UNKNOWN, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
        (after,) = read_report(report)["hosts"]
        assert after["status"] == "unreachable", after
        assert "no SSH banner" in json.dumps(after), after  # the guest's port is forwarded; nothing answers
        g.kill()

        # Recovery from the ISO on that very disk: the installer boots with it as /dev/vda.
        inst = ksboot.installer_on(g.disks["vda"], variant, tmp_path / "installer")
        made.append(inst)
        rc, live_before, err = inst.ssh(LAB_LIVE_ROOT)
        assert rc == 0, err
        data = {**ksboot.host_data(inst), "role": "installer",
                "luks_passphrase_file": str(snapshot.passphrase_file(variant))}
        inv = inventory.write(tmp_path / "installer-inventory.py", [("ksinst", data)])
        report = tmp_path / "recovery.json"
        done = run_pyinfra(inv, "fix/emergency-access.py", "--data", "allow_force_import=true",
                           "--data", f"report={report}", timeout=900)
        assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
        (entry,) = read_report(report)["hosts"]
        result = {r["check"]: r for r in entry["results"]}["recovery-system-mounted"]
        # No fix exists for a lost key: the recovery names it and refuses, and leaves no credstore open.
        assert result["outcome"] == "fix-failed", result
        assert "key file /etc/credstore/zfs-sysroot.mount is missing" in json.dumps(result), result
        rc, out, err = inst.ssh("test -e /dev/mapper/credstore; echo mapped $?; findmnt -n /etc/credstore; echo mounted $?")
        assert out.split() == ["mapped", "1", "mounted", "1"], (out, err)
        rc, live_after, err = inst.ssh(LAB_LIVE_ROOT)
        assert rc == 0 and live_after == live_before, (live_before, live_after, err)
        row = {"fault": "credstore-key-file-removed", "guest": "ksboot", "variant": variant.name,
               "before_reboot": caught, "initrd_stop": reason, "after_reboot": after["status"],
               "after_reboot_error": after.get("error"), "recovery": result["outcome"],
               "recovery_error": (result.get("fix") or {}).get("error")}
        if os.environ.get("KC_LAB_REBOOT_OUT"):
            with open(os.environ["KC_LAB_REBOOT_OUT"], "a") as fh:
                fh.write(json.dumps(row) + "\n")
        print(json.dumps(row, indent=2))
    finally:
        for guest in made:
            guest.kill()
