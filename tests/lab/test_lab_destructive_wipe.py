"""Guarantee (lab, real disk): the "Complete System Rebuild" wipe, run through the real pyinfra CLI
(playbooks/fix/rebuild.py), refuses while any condition is unmet -- no consent, another device
named, pool imported, a partition mounted, the disk held open by a process, a device-mapper holder
-- leaving the lab data intact (checksum), and wipes the disk once every condition is met.

Uses the lab's ``lab_host`` factory (tests/lab/conftest.py): state "installed" is the installer ISO
booted with a Keystone system installed on /dev/vda (pool rpool, lab data checksummed).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kc_helpers import read_report, run_pyinfra

pytestmark = pytest.mark.lab

CHECK = "target-disk-no-old-signatures"  # the catalog check whose fix is disks.wipe_disk


def _rebuild(host, tmp_path: Path, tag: str, *data: str):
    report_path = tmp_path / f"rebuild-{tag}.json"
    args = []
    for item in data:
        args += ["--data", item]
    done = run_pyinfra(host.inventory_path, "fix/rebuild.py", "--data", f"report={report_path}", *args, timeout=600)
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out[-3000:]
    report = read_report(report_path)
    (entry,) = report["hosts"]
    # Host data refused at load (e.g. consent naming no host): the host is `error`, no check ran.
    result = {r["check"]: r for r in entry["results"]}.get(CHECK) or {"outcome": entry["status"],
                                                                      "message": entry["error"]}
    return result, out


def consent(host, device="/dev/vda"):
    """The operator's consent names the host and its disk (a device alone could match every host)."""
    return ("allow_destructive=true", f"destructive_device={host.name}:{device}")


def test_wipe_refused_for_each_unmet_condition_then_done(lab_host, tmp_path):
    host = lab_host("installed")
    expected = host.expected_checksum
    assert host.checksum() == expected

    def refused(tag, *data, reason, or_skipped_by=None, data_readable=True, or_refused=None):
        """Refused by the runner or the on-host guard, or (when the catalog has a check for the
        condition that the wipe depends on) skipped because that check failed."""
        result, out = _rebuild(host, tmp_path, tag, *data)
        text = out + str(result.get("fix")) + str(result.get("message"))
        if or_skipped_by and result["outcome"] == "skipped":
            assert or_skipped_by in result["message"], (tag, result)
        elif or_refused and or_refused in str((result.get("fix") or {}).get("refused")):
            assert result["outcome"] == "fail", (tag, result)
        else:
            assert result["outcome"] in ("fail", "fix-failed", "error"), (tag, result)
            assert reason in text, (tag, reason, text[-3000:])
        if data_readable:
            assert host.checksum() == expected, f"{tag}: data changed by a refused wipe"

    # The runner refuses before anything is queued.
    refused("no-consent", reason="allow_destructive")
    refused("other-device", *consent(host, "/dev/vda1"), reason="not the inventory's disk")
    refused("device-without-host", "allow_destructive=true", "destructive_device=/dev/vda", reason="does not name a host")

    # The on-host guard refuses (same shell command as the wipe).
    rc, _, err = host.ssh("zpool import -N -f rpool")
    assert rc == 0, err
    # The pool imported with -N mounts nothing: its data is read (checksum) once it is exported again.
    refused("pool-imported", *consent(host), reason="vdev of an imported ZFS pool", or_skipped_by="target-disk-",
            data_readable=False, or_refused="not in the plan")
    host.ssh("zpool export rpool")  # unless target-disk-no-imported-pool's own (planned) fix exported it
    assert host.checksum() == expected, "pool-imported: data changed by a refused wipe"

    # A mounted partition: the fix playbook releases it first (target-disk-not-mounted, a disruptive
    # fix in the plan); the wipe then became applicable only after that fix, so it is refused as
    # not in the plan the operator saw (or the on-host guard refuses the mount itself).
    assert host.ssh("mkdir -p /mnt/kc-esp && mount /dev/vda1 /mnt/kc-esp")[0] == 0
    refused("mounted", *consent(host), reason="is mounted at /mnt/kc-esp", or_skipped_by="target-disk-not-mounted",
            or_refused="not in the plan")
    host.ssh("umount /mnt/kc-esp")

    assert host.ssh("nohup sleep 600 < /dev/vda > /dev/null 2>&1 & echo $! > /run/kc-holder.pid")[0] == 0
    refused("open", *consent(host), reason="is open by process")
    assert host.ssh("kill $(cat /run/kc-holder.pid)")[0] == 0

    rc, _, err = host.ssh("dmsetup create kc-hold --table '0 8 linear /dev/vda2 0'")
    if rc == 0:
        # While the dm device holds the partition ZFS cannot read the pool: checksum once it is gone.
        refused("holder", *consent(host), reason="held open by dm-", data_readable=False)
        assert host.ssh("dmsetup remove kc-hold")[0] == 0
        assert host.checksum() == expected, "holder: data changed by a refused wipe"

    rc, out, _ = host.ssh("for l in /dev/disk/by-id/*; do [ \"$(readlink -f $l)\" = /dev/vda ] && echo $l; done; true")
    by_id = out.split()[0] if out.split() else ""

    # Every condition met: the disk is wiped (through its by-id name where the guest has one).
    result, out = _rebuild(host, tmp_path, "all-met", *consent(host, by_id or "/dev/vda"),
                           *([f"disk={by_id}"] if by_id else []))
    assert result["outcome"] == "fixed", (result, out[-3000:])
    rc, signatures, _ = host.ssh("wipefs --noheadings /dev/vda; lsblk -no PTTYPE /dev/vda")
    assert signatures.strip() == "", signatures
