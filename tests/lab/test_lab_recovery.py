"""Recovery from the ISO on a real Keystone dataset layout, and the live system stays untouched.

State ``installed`` (tests/lab/conftest.py): the installer ("ISO") booted from its own ext4 root,
with a Keystone pool on /dev/vda, exported, whose datasets carry Keystone's real mountpoints
(rpool/crypt/system at /, system/nix at /nix, system/var at /var: ncrmro/keystone
modules/os/storage.nix@v0.2.0; guest/setup-installed.sh). Imported without an altroot, those would
mount over the ISO's own root. The emergency-access fix runs through the real pyinfra CLI with the
lab's passphrase file (sent on stdin), as an operator would run it.
"""

import pytest
from kc_helpers import LAB_LIVE_ROOT, read_report, run_pyinfra

pytestmark = pytest.mark.lab



def _results(tmp_path, host, playbook, tag, *args):
    path = tmp_path / f"{tag}.json"
    done = run_pyinfra(host.inventory_path, playbook, *args, "--data", f"report={path}", timeout=900)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    (entry,) = read_report(path)["hosts"]
    assert entry["status"] == "ok", entry["error"]
    return {r["check"]: r for r in entry["results"]}, done


def test_emergency_access_mounts_the_system_under_mnt_and_leaves_the_iso_alone(lab_host, lab_zfs, tmp_path):
    host = lab_host("installed", zfs=lab_zfs)
    rc, live_before, err = host.ssh(LAB_LIVE_ROOT)
    assert rc == 0, err
    passphrase = open(host.data["luks_passphrase_file"]).read().strip()

    before, _ = _results(tmp_path, host, "recovery.py", "before")
    assert before["recovery-system-mounted"]["outcome"] == "fail", before["recovery-system-mounted"]

    fixed, done = _results(tmp_path, host, "fix/emergency-access.py", "fix")
    assert fixed["recovery-system-mounted"]["outcome"] == "fixed", (fixed["recovery-system-mounted"], done.stdout[-3000:])
    commands = " ".join(fixed["recovery-system-mounted"]["fix"]["commands"])
    assert "zpool import -N -R /mnt -- rpool" in commands
    assert passphrase not in done.stdout + done.stderr + (tmp_path / "fix.json").read_text()

    rc, out, err = host.ssh("zpool get -H -o value altroot rpool; findmnt -n -o SOURCE /mnt; "
                            "findmnt -n -o SOURCE /mnt/nix; findmnt -n -o SOURCE /mnt/var; "
                            "cat /mnt/etc/keystone-lab-installed; zfs get -H -o value keystatus rpool/crypt; "
                            "cryptsetup status credstore >/dev/null 2>&1; echo credstore-exit $?; "
                            "findmnt -n /etc/credstore >/dev/null; echo credstore-mounted $?")
    assert rc == 0, err
    assert out.splitlines() == ["/mnt", "rpool/crypt/system", "rpool/crypt/system/nix", "rpool/crypt/system/var",
                                "keystone-lab installed system", "available", "credstore-exit 4",
                                "credstore-mounted 1"], out
    rc, live_after, err = host.ssh(LAB_LIVE_ROOT)
    assert rc == 0 and live_after == live_before, (live_before, live_after, err)

    after, _ = _results(tmp_path, host, "recovery.py", "after")
    for check in ("recovery-system-mounted", "recovery-key-file-present", "recovery-pool-importable"):
        assert after[check]["outcome"] == "pass", after[check]
    # the operator's next step (the ESP is not part of the pool), then the data written at install
    assert host.ssh("mount /dev/vda1 /mnt/boot")[0] == 0
    assert host.checksum() == host.expected_checksum


def test_emergency_access_refuses_a_pool_imported_without_altroot(lab_host, lab_zfs, tmp_path):
    """An operator imported the pool by hand without -R: nothing is mounted over the ISO, the fix
    says how to re-import, and the credstore is closed again."""
    host = lab_host("installed", zfs=lab_zfs)
    assert host.ssh("zpool import -N rpool")[0] == 0
    rc, live_before, err = host.ssh(LAB_LIVE_ROOT)
    assert rc == 0, err

    fixed, done = _results(tmp_path, host, "fix/emergency-access.py", "fix")
    result = fixed["recovery-system-mounted"]
    assert result["outcome"] == "fix-failed", result
    assert "refusing to mount: pool rpool is imported with altroot '-'" in result["message"] + done.stdout + done.stderr

    rc, out, _ = host.ssh("findmnt -rn -o SOURCE | grep -c '^rpool' || true; "
                          "cryptsetup status credstore >/dev/null 2>&1; echo $?")
    assert out.split() == ["0", "4"], out
    rc, live_after, err = host.ssh(LAB_LIVE_ROOT)
    assert live_after == live_before, (live_before, live_after, err)
