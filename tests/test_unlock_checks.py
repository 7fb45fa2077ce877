"""Boot-time unlock judged where it happens: on a Keystone host the credstore is opened,
mounted and the key loaded in the systemd initrd, and closed before switch-root; the running
system never has it open. The checks read the journal of the boot (luks.UnlockJournal, fixtures
captured from real systemd 252) and the credstore's LUKS header read-only (luks.LuksHeader, real
cryptsetup 2.6.1 output); no fix opens the credstore on a Keystone host.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from op_runner import run

from keystone_checks.engine.catalog import load_catalog
from keystone_checks.engine.evaluate import Outcome, evaluate
from keystone_checks.operations import luks

FIXTURES = Path(__file__).parent / "fixtures" / "facts"
CATALOG = {c.id: c for c in load_catalog()}
CONTEXT = {"pool": "rpool", "credstore_name": "credstore", "credstore_mount": "/etc/credstore",
           "crypt_dataset": "rpool/crypt", "key_file": "/etc/credstore/zfs-sysroot.mount",
           "credstore_device": "/dev/zvol/rpool/credstore"}


def fact(name, case):
    return yaml.safe_load((FIXTURES / name / f"{case}.yaml").read_text())["fact"]


CLOSED = fact("luks.MappingStatus", "inactive")
OPEN = fact("luks.MappingStatus", "active-mounted")
LOADED = {"exists": True, "encryption": "aes-256-gcm", "keystatus": "available", "keyformat": "raw",
          "keylocation": "file:///etc/credstore/zfs-sysroot.mount", "datasets": [], "locked": [], "unmounted": []}
LOCKED = {**LOADED, "keystatus": "unavailable", "locked": ["rpool/crypt"]}
NO_KEY_FILE = {"exists": False, "type": None, "size": None}
KEYSTONE = fact("luks.UnlockJournal", "initrd-chain-ok")
NO_CHAIN = fact("luks.UnlockJournal", "no-unlock-units")


def outcome(check_id, **gathered):
    return evaluate(CATALOG[check_id], gathered, CONTEXT)


def test_keystone_host_healthy_with_the_credstore_closed():
    """The state that cannot fail on a Keystone host: initrd chain done, credstore closed in stage 2."""
    assert KEYSTONE["keystone_chain"] and KEYSTONE["systemd_initrd"] and KEYSTONE["credstore_closed_before_switch_root"]
    gathered = dict(unlock=KEYSTONE, credstore=CLOSED, crypt=LOADED, key=NO_KEY_FILE)
    for check in ("credstore-unlocked", "credstore-mounted", "key-file-present", "credstore-closed-in-stage2"):
        result = outcome(check, **{k: v for k, v in gathered.items() if k in CATALOG[check].gather})
        assert result.outcome == Outcome.PASS, (check, result.message)


def test_keystone_host_with_the_credstore_open_in_stage2_fails():
    result = outcome("credstore-closed-in-stage2", unlock=KEYSTONE, credstore=OPEN)
    assert result.outcome == Outcome.FAIL and "closed and unmounted" in result.message
    assert CATALOG["credstore-closed-in-stage2"].fix.steps[0].op == "luks.close_mapping"


def test_a_failed_initrd_step_is_named_with_its_message():
    broken = fact("luks.UnlockJournal", "initrd-load-key-failed")
    result = outcome("unlock-previous-boot", previous=broken)
    assert result.outcome == Outcome.FAIL
    assert broken["failed_step"] == "load-key"
    assert "Key load error: Failed to open key material file" in broken["failure"]
    assert "Key load error" in str(result.evidence)
    imported = fact("luks.UnlockJournal", "initrd-import-failed")
    assert imported["failed_step"] == "import" and "no such pool available" in imported["failure"]
    assert outcome("unlock-previous-boot", previous=imported).outcome == Outcome.FAIL
    # the same failure judged in this boot (a key-file check of the running system) fails too
    assert outcome("key-file-present", unlock={**broken, "boot": 0}, key=NO_KEY_FILE, credstore=CLOSED,
                   crypt=LOADED).outcome == Outcome.FAIL


@pytest.mark.parametrize("case", ["no-previous-boot", "initrd-chain-ok", "no-unlock-units"])
def test_previous_boot_passes_without_a_failure(case):
    assert outcome("unlock-previous-boot", previous=fact("luks.UnlockJournal", case)).outcome == Outcome.PASS


def test_host_without_initrd_unlock_is_judged_by_its_running_state():
    # (the lab's Debian deployed guest: it loads the key in the running system)
    assert outcome("credstore-unlocked", unlock=NO_CHAIN, credstore=CLOSED, crypt=LOCKED).outcome == Outcome.FAIL
    assert outcome("credstore-unlocked", unlock=NO_CHAIN, credstore=CLOSED, crypt=LOADED).outcome == Outcome.PASS
    assert outcome("credstore-unlocked", unlock=NO_CHAIN, credstore=OPEN, crypt=LOCKED).outcome == Outcome.PASS
    assert outcome("credstore-closed-in-stage2", unlock=NO_CHAIN, credstore=OPEN).outcome == Outcome.PASS
    assert outcome("key-file-present", unlock=NO_CHAIN, key=NO_KEY_FILE, credstore=OPEN,
                   crypt=LOADED).outcome == Outcome.FAIL


def test_header_checks_on_real_luksdump_output():
    assert outcome("credstore-luks-header", header=fact("luks.LuksHeader", "luks2-tpm2-token")).outcome == Outcome.PASS
    assert outcome("credstore-luks-header", header=fact("luks.LuksHeader", "luks1")).outcome == Outcome.PASS
    for bad in ("not-luks", "device-missing"):
        assert outcome("credstore-luks-header", header=fact("luks.LuksHeader", bad)).outcome == Outcome.FAIL, bad
    assert outcome("credstore-tpm2-enrolled", header=fact("luks.LuksHeader", "luks2-token-no-plugin")).outcome == Outcome.PASS
    assert outcome("credstore-tpm2-enrolled", header=fact("luks.LuksHeader", "luks1")).outcome == Outcome.FAIL


def test_no_deployed_fix_opens_the_credstore_and_leaves_it_open():
    """Every deployed check's fix steps: none of them opens the credstore (luks.open_mapping,
    zfs.mount_credstore); the one that has to (unlock_load_key) closes it in the same command."""
    for check in CATALOG.values():
        if "deployed" not in check.roles or not check.fix or not check.fix.steps:
            continue
        ops = check.fix.ops
        assert "luks.open_mapping" not in ops and "zfs.mount_credstore" not in ops, (check.id, ops)


# -- luks.unlock_load_key, run in a real sh with fake binaries --------------------------------------

def _fake_host(tmp_path, journal_lines: str, keystatus="unavailable", key_present=True, load_key_rc=0):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "log"
    mnt = tmp_path / "credstore"
    fakes = {
        "journalctl": f"#!/bin/sh\necho \"journalctl $*\" >> {log}\nprintf '%s' '{journal_lines}'\n",
        "zfs": (f"#!/bin/sh\necho \"zfs $*\" >> {log}\ncase \"$1\" in get) echo {keystatus};; "
                f"load-key) exit {load_key_rc};; esac\n"),
        "cryptsetup": (f"#!/bin/sh\nif [ \"$1\" = open ]; then read -r p; echo \"cryptsetup $* stdin=$p\" >> {log}; "
                       f"else echo \"cryptsetup $*\" >> {log}; fi\n[ \"$1\" = status ] && exit 4\nexit 0\n"),
        "mount": f"#!/bin/sh\necho \"mount $*\" >> {log}\n{'touch ' + str(mnt / 'zfs-sysroot.mount') if key_present else 'true'}\n",
        "umount": f"#!/bin/sh\necho \"umount $*\" >> {log}\n",
    }
    for name, text in fakes.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return bin_dir, log, mnt


def _unlock(tmp_path, bin_dir, mnt):
    secret = tmp_path / "pass"
    secret.write_text("lab-passphrase\n")
    secret.chmod(0o600)
    (cmd,), _ = run(luks, luks.unlock_load_key, mapping="credstore", device="/dev/zvol/rpool/credstore",
                    path=str(mnt), dataset="rpool/crypt", key_file=str(mnt / "zfs-sysroot.mount"),
                    passphrase_file=str(secret))
    assert "lab-passphrase" not in str(cmd)
    # as pyinfra sends it: the value on the command's stdin, one line
    stdin = str(cmd.connector_arguments["_stdin"]) + "\n"
    done = subprocess.run(["sh", "-c", str(cmd)], input=stdin,
                          capture_output=True, text=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, timeout=30)
    return done


def test_unlock_load_key_refuses_on_a_keystone_host(tmp_path):
    bin_dir, log, mnt = _fake_host(tmp_path, "Finished rpool-load-key.service.\n")
    done = _unlock(tmp_path, bin_dir, mnt)
    assert done.returncode == 1 and "loads the key of rpool/crypt in its initrd" in done.stderr
    assert "emergency-access" in done.stderr
    assert "cryptsetup open" not in log.read_text() and "mount " not in log.read_text()


def test_unlock_load_key_closes_the_credstore_again(tmp_path):
    bin_dir, log, mnt = _fake_host(tmp_path, "")
    mnt.mkdir()
    done = _unlock(tmp_path, bin_dir, mnt)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    opened = [c for c in calls if c.startswith("cryptsetup open")]
    assert opened == ["cryptsetup open --type luks -- /dev/zvol/rpool/credstore credstore stdin=lab-passphrase"]
    assert f"mount -o ro -- /dev/mapper/credstore {mnt}" in calls
    assert f"zfs load-key -L file://{mnt}/zfs-sysroot.mount -- rpool/crypt" in calls
    assert calls[-2:] == ["umount -- /dev/mapper/credstore", "cryptsetup close -- credstore"]


def test_unlock_load_key_closes_the_credstore_when_the_load_fails(tmp_path):
    bin_dir, log, mnt = _fake_host(tmp_path, "", load_key_rc=255)
    mnt.mkdir()
    done = _unlock(tmp_path, bin_dir, mnt)
    assert done.returncode == 255
    assert log.read_text().splitlines()[-2:] == ["umount -- /dev/mapper/credstore", "cryptsetup close -- credstore"]


def test_unlock_journal_command_quotes_host_data(tmp_path):
    """pool, mapping and mount reach the shell quoted (boot and limit are ints: anything else raises)."""
    from keystone_checks.facts.luks import UnlockJournal

    pwned = tmp_path / "pwned"
    cmd = UnlockJournal().command(boot=-1, pool=f"rpool; touch {pwned}", mapping=f"c$(touch {pwned})",
                                  mount=f"/etc/x' ; touch {pwned} ; '")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "journalctl").write_text("#!/bin/sh\nprintf '%s\\n' \"$@\"\n")
    (bin_dir / "journalctl").chmod(0o755)
    done = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert done.returncode == 0 and not pwned.exists()
    assert f"systemd-cryptsetup@c$(touch {pwned}).service" in done.stdout.splitlines()
    with pytest.raises(ValueError):
        UnlockJournal().command(boot="0; reboot")
