"""Guarantee: the destructive "Complete System Rebuild" wipe runs only when every condition holds,
verified on the host in the same shell command that wipes; otherwise it refuses and writes nothing.

The guard script is run for real with `sh` against a stand-in disk: a regular file in a crafted
/dev + /sys tree, with crafted copies of /proc/self/mountinfo, /proc/mounts and /proc/swaps, a
`zpool` that prints a canned `zpool status -P`, and the real `/proc`, `stat`, `readlink`, `wipefs`,
`sgdisk`. Only the paths the script reads are changed; its logic is the operation's own.
tests/test_safety_wipe_loop.py runs the same guard with the REAL kernel interfaces on loop devices.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from guard_harness import run_guard

from keystone_checks.engine.commands import text
from keystone_checks.engine.fix import refusal_for as _refusal
from keystone_checks.operations.disks import REAL, REFUSED_EXIT, GuardPaths, guarded_wipe_script

HAVE_SGDISK = shutil.which("sgdisk") is not None


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FakeHost:
    def __init__(self, root: Path):
        self.root = root
        self.dev = root / "dev"
        (self.dev / "disk" / "by-id").mkdir(parents=True)
        self.disk = self.dev / "fakedisk"
        self.part = self.dev / "fakedisk1"
        self.other = self.dev / "otherdisk"
        self.disk.write_bytes(os.urandom(4 * 1024 * 1024))
        self.part.write_bytes(b"")
        self.other.write_bytes(os.urandom(1024 * 1024))
        self.by_id = self.dev / "disk" / "by-id" / "ata-FAKE_DISK_123"
        self.by_id.symlink_to("../../fakedisk")
        sysb = root / "sys" / "block"
        for name, majmin in (("fakedisk", "254:0"), ("otherdisk", "254:16")):
            (sysb / name / "holders").mkdir(parents=True)
            (sysb / name / "dev").write_text(majmin + "\n")
        (sysb / "fakedisk" / "fakedisk1" / "holders").mkdir(parents=True)
        (sysb / "fakedisk" / "fakedisk1" / "partition").write_text("1\n")
        (sysb / "fakedisk" / "fakedisk1" / "dev").write_text("254:1\n")
        self.sys_block = sysb
        self.mountinfo = root / "mountinfo"
        self.mountinfo.write_text("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
                                  "23 22 0:5 / /proc rw - proc proc rw\n")
        self.mounts = root / "mounts"
        self.mounts.write_text("/dev/sda1 / ext4 rw 0 0\nproc /proc proc rw 0 0\nrpool/crypt /x zfs rw 0 0\n")
        self.swaps = root / "swaps"
        self.swaps.write_text("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/zram0 partition 1 0 100\n")
        self.zpool_out = root / "zpool-status"
        self.zpool_out.write_text("no pools available\n")
        self.zpool = root / "zpool"
        self.zpool.write_text(f"#!/bin/sh\n[ \"$1 $2\" = 'status -P' ] || exit 2\ncat {self.zpool_out}\n")
        self.zpool.chmod(0o755)
        if HAVE_SGDISK:  # give the stand-in a real GPT so the wipe has something to erase
            subprocess.run(["sgdisk", "-o", "-n", "1:0:0", str(self.disk)], check=True, capture_output=True)

    def paths(self, **changes) -> GuardPaths:
        base = GuardPaths(mountinfo=str(self.mountinfo), mounts=str(self.mounts), swaps=str(self.swaps),
                          sys_block=str(self.sys_block), dev_dir=str(self.dev), zpool=str(self.zpool),
                          require_block_device=False)
        return replace(base, **changes)

    def run(self, device, expected=None, env_path=None, hold=None, **changes) -> subprocess.CompletedProcess:
        script = text(guarded_wipe_script(str(device), str(expected if expected is not None else device), self.paths(**changes)))
        env = {**os.environ}
        if env_path is not None:
            env["PATH"] = env_path
        return run_guard(script, env=env, hold=hold)


@pytest.fixture
def fake(tmp_path):
    return FakeHost(tmp_path / "host")


def assert_refused(done, fake, reason, before):
    assert done.returncode == REFUSED_EXIT, (done.returncode, done.stdout, done.stderr)
    assert "refusing:" in done.stderr and reason in done.stderr, done.stderr
    assert "wiping" not in done.stdout
    assert sha(fake.disk) == before, "a refused wipe must not write to the disk"


@pytest.mark.skipif(not HAVE_SGDISK, reason="sgdisk (gdisk) not installed")
def test_all_conditions_met_wipes_via_by_id(fake):
    before = sha(fake.disk)
    assert "gpt" in subprocess.run(["wipefs", str(fake.disk)], capture_output=True, text=True).stdout.lower()
    done = fake.run(fake.by_id, fake.by_id)
    assert done.returncode == 0, done.stderr
    assert "wiping" in done.stdout
    assert sha(fake.disk) != before
    left = subprocess.run(["wipefs", "--noheadings", str(fake.disk)], capture_output=True, text=True).stdout
    assert left.strip() == "", f"signatures left after the wipe: {left}"


def test_named_by_id_and_declared_plain_path_are_the_same_disk(fake):
    # Resolution goes through readlink -f: a by-id name and /dev/<name> match; sgdisk missing or
    # not, the refusal (if any) must not be about identity.
    done = fake.run(fake.by_id, fake.disk)
    assert "is but" not in done.stderr and "the inventory's disk" not in done.stderr, done.stderr


@pytest.mark.parametrize("case", ["other-disk", "missing", "partition", "mounted-majmin", "mounted-path", "swap",
                                  "holder-disk", "holder-partition", "zpool", "zpool-error", "empty-device",
                                  "injection"])
def test_each_unmet_condition_refuses_and_leaves_the_disk_intact(fake, case, tmp_path):
    before = sha(fake.disk)
    device, expected, changes, reason = fake.by_id, fake.by_id, {}, ""
    if case == "other-disk":
        device, reason = fake.other, "but the inventory's disk"
    elif case == "missing":
        device = expected = fake.dev / "nope"
        reason = "does not exist"
    elif case == "partition":
        device = expected = fake.part
        reason = "is not a whole disk"
    elif case == "mounted-majmin":
        with fake.mountinfo.open("a") as f:
            f.write("40 22 254:1 / /mnt/data rw,relatime - ext4 /dev/whatever rw\n")
        reason = "is mounted at /mnt/data"
    elif case == "mounted-path":
        with fake.mounts.open("a") as f:
            f.write(f"{fake.part} /mnt/other ext4 rw 0 0\n")
        reason = "is mounted at /mnt/other"
    elif case == "swap":
        with fake.swaps.open("a") as f:
            f.write(f"{fake.part} partition 1024 0 -2\n")
        reason = "in use as swap"
    elif case == "holder-disk":
        (fake.sys_block / "fakedisk" / "holders" / "md0").mkdir()
        reason = "held open by md0"
    elif case == "holder-partition":
        (fake.sys_block / "fakedisk" / "fakedisk1" / "holders" / "dm-0").mkdir()
        reason = "held open by dm-0"
    elif case == "zpool":
        link = fake.dev / "disk" / "by-id" / "ata-FAKE_DISK_123-part1"
        link.symlink_to("../../fakedisk1")
        fake.zpool_out.write_text(f"  pool: rpool\n state: ONLINE\nconfig:\n\n\tNAME STATE\n\trpool ONLINE\n\t  {link} ONLINE 0 0 0\n")
        reason = "vdev of an imported ZFS pool"
    elif case == "zpool-error":
        fake.zpool.write_text("#!/bin/sh\necho 'internal error: something' >&2\nexit 1\n")
        reason = "cannot list imported ZFS pools"
    elif case == "empty-device":
        device, reason = "", "no device named"
    elif case == "injection":
        pwned = tmp_path / f"pwned-{uuid.uuid4().hex}"
        device = expected = f"{fake.disk}; touch {pwned}"
        reason = "does not exist"
    done = fake.run(device, expected, **changes)
    assert_refused(done, fake, reason, before)
    if case == "injection":
        assert not pwned.exists()


def test_open_by_a_process_refuses(fake):
    before = sha(fake.disk)
    done = fake.run(fake.by_id, hold=str(fake.disk))
    assert_refused(done, fake, "is open by process", before)
    assert "(sleep)" in done.stderr, done.stderr


def test_missing_sgdisk_refuses_before_wipefs_runs(fake, tmp_path):
    before = sha(fake.disk)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("readlink", "cat", "wipefs"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    done = fake.run(fake.by_id, env_path=str(bin_dir))
    assert_refused(done, fake, "sgdisk is not installed", before)


def test_real_paths_refuse_a_regular_file(tmp_path):
    """The operation itself always uses the real kernel interfaces and demands a block device."""
    stand_in = tmp_path / "disk.img"
    stand_in.write_bytes(os.urandom(65536))
    before = sha(stand_in)
    script = text(guarded_wipe_script(str(stand_in), str(stand_in)))
    assert REAL.require_block_device and REAL.mountinfo == "/proc/self/mountinfo"
    done = run_guard(script)
    assert done.returncode == REFUSED_EXIT and "is not a block device" in done.stderr
    assert sha(stand_in) == before


class _Named:
    """The pyinfra host an operation sees: only its name matters to wipe_disk."""

    def __init__(self, name):
        self.name = name


def test_operation_refuses_without_consent_or_on_mismatch():
    from pyinfra.api.exceptions import OperationValueError
    from pyinfra.context import ctx_host

    from keystone_checks.operations.disks import wipe_disk

    with ctx_host.use(_Named("server1")):
        for args in ({"allow": False}, {"allow": "false"}, {"allow": True, "device": "server1:/dev/vdb"},
                     {"allow": True, "device": ""}, {"allow": True, "device": "/dev/vda"},
                     {"allow": True, "device": "server2:/dev/vda"}):
            kwargs = {"device": "server1:/dev/vda", "expected_device": "/dev/vda", **args}
            with pytest.raises(OperationValueError, match="refusing"):
                next(wipe_disk._inner(**kwargs))
        script = text(next(wipe_disk._inner(device="server2:/dev/vdb,server1:/dev/vda", expected_device="/dev/vda",
                                            allow=True)))
    assert script.index("refuse()") < script.index("wipefs -a") < script.index("sgdisk --zap-all")
    assert "kc_dev=/dev/vda ;" in script and "exit 3" in script and REFUSED_EXIT == 3


def test_runner_refusal_needs_consent_device_and_force_import_consent():
    base = {"host": "server1", "disk": "/dev/vda", "allow_destructive": True,
            "destructive_device": "server1:/dev/vda", "allow_force_import": False}
    assert _refusal("destructive", base) is None
    assert _refusal("destructive", {**base, "destructive_device": "server2:/dev/vdb,server1:/dev/vda"}) is None
    # A device alone (shared by every host of the run) or another host's entry is no consent.
    assert "does not name host 'server1'" in _refusal("destructive", {**base, "destructive_device": "/dev/vda"})
    assert "does not name host" in _refusal("destructive", {**base, "destructive_device": "server2:/dev/vda"})
    assert _refusal("safe", {}) is None
    assert "allow_destructive" in _refusal("destructive", {**base, "allow_destructive": False})
    assert "destructive_device" in _refusal("destructive", {**base, "destructive_device": ""})
    assert "not the inventory's disk" in _refusal("destructive", {**base, "destructive_device": "server1:/dev/vdb"})
    assert "disk" in _refusal("destructive", {**base, "disk": "", "destructive_device": ""})
    # Decided by the operation (its `forces_import` attribute), not by its name.
    force_step = [{"op": "zfs.force_import_scrub_export", "args": {"pool": "rpool"}}]
    assert "allow_force_import" in _refusal("destructive", base, force_step)
    assert "allow_force_import" in _refusal("disruptive", base, force_step)
    assert _refusal("destructive", {**base, "allow_force_import": True}, force_step) is None
    # import_pool forces only when the pool was last used elsewhere, and checks the consent on the host.
    assert _refusal("safe", base, [{"op": "zfs.import_pool", "args": {"pool": "rpool"}}]) is None
