"""Guarantee: the wipe guard sees every way a disk is in use, with the REAL kernel interfaces.

The disk is a disposable loop device on a file in the test's tmp dir (``losetup -P``, with a GPT
and one partition), never a real disk; the guard script is the operation's own with the real
paths (``disks.REAL``: /proc/self/mountinfo, /proc/mounts, /proc/swaps, /sys/block, /dev, /proc),
run by ``guard_harness.run_guard`` in a PID namespace of its own (see there why). Each case puts
the disk in use one way; the guard must refuse and leave every byte as it was. With nothing in use
it wipes. Every loop device and mount made here is removed in the fixture's teardown.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from guard_harness import run_guard

from keystone_checks.engine.commands import text
from keystone_checks.operations.disks import REAL, REFUSED_EXIT, guarded_wipe_script

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("losetup") or not shutil.which("sgdisk"),
                                reason="needs root, losetup and sgdisk (loop devices on image files)")


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=60).stdout.strip()


def sha_dev(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Loops:
    """Loop devices and mounts made by one test, all undone in ``close()`` (newest first)."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.undo: list[list[str]] = []

    def attach(self, backing: str, partitions: bool = False, read_only: bool = False) -> str:
        dev = sh("losetup", "-f", "--show", *(["-P"] if partitions else []), *(["-r"] if read_only else []),
                 "--", backing)
        self.undo.append(["losetup", "-d", dev])
        return dev

    def image(self, name: str, size_mb: int) -> str:
        path = self.tmp / name
        with open(path, "wb") as f:
            f.truncate(size_mb * 1024 * 1024)
        return str(path)

    def mount(self, dev: str, where: Path, *options: str) -> None:
        where.mkdir(parents=True, exist_ok=True)
        sh("mount", *options, "--", dev, str(where))
        self.undo.append(["umount", "-l", "--", str(where)])

    def close(self) -> None:
        for command in reversed(self.undo):
            subprocess.run(command, capture_output=True, timeout=60)
        self.undo.clear()


@pytest.fixture
def loops(tmp_path):
    made = Loops(tmp_path)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def disk(loops):
    """A 64 MiB loop "disk" with a GPT and one partition (/dev/loopNp1 exists: -P)."""
    image = loops.image("disk.img", 64)
    sh("sgdisk", "-o", "-n", "1:0:0", "--", image)
    dev = loops.attach(image, partitions=True)
    for _ in range(10):  # the kernel scans partitions on attach; the node may lag a little
        if Path(f"{dev}p1").exists():
            break
        time.sleep(0.1)
    return dev


@pytest.fixture
def fs_dev(disk):
    """Where a filesystem goes: the partition when this kernel made one (partscan), else the whole
    disk (a "superfloppy"; either way the filesystem is on the disk)."""
    part = f"{disk}p1"
    dev = part if Path(part).exists() else disk
    # No lazy init: ext4 would otherwise write inode tables in the background while a test
    # compares the disk's bytes before and after the guard ran.
    sh("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", "--", dev)
    return dev


@pytest.fixture
def part(disk):
    if not Path(f"{disk}p1").exists():
        pytest.skip("this kernel made no partition device for the loop disk (partscan unavailable)")
    return f"{disk}p1"


def guard(dev: str, hold: str | None = None, own_proc: bool = True):
    script = text(guarded_wipe_script(dev, dev, REAL))
    if own_proc:
        return run_guard(script, hold=hold)
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=60)


def assert_refused(done, reason: str, dev: str, before: str) -> None:
    assert done.returncode == REFUSED_EXIT, (done.returncode, done.stdout, done.stderr)
    assert "refusing:" in done.stderr and reason in done.stderr, done.stderr
    assert "wiping" not in done.stdout
    assert sha_dev(dev) == before, "the guard refused but the disk changed"


def test_wipes_a_loop_disk_when_nothing_uses_it(disk):
    assert "gpt" in sh("wipefs", "--", disk).lower()
    done = guard(disk)
    assert done.returncode == 0, done.stderr
    assert "wiping" in done.stdout
    assert sh("wipefs", "--noheadings", "--", disk) == ""


def test_refuses_when_a_loop_device_is_stacked_on_the_disk(disk, loops):
    before = sha_dev(disk)
    upper = loops.attach(disk)
    done = guard(disk)
    assert_refused(done, f"in use by {Path(upper).name} (a loop device backed by {disk})", disk, before)


def test_refuses_when_a_loop_device_is_stacked_on_a_partition(disk, part, loops):
    before = sha_dev(disk)
    loops.attach(part)
    assert_refused(guard(disk), "a loop device backed by", disk, before)


def test_refuses_when_a_loop_file_lives_on_a_filesystem_on_the_disk_even_after_lazy_unmount(disk, fs_dev, loops, tmp_path):
    where = tmp_path / "mnt"
    loops.mount(fs_dev, where)
    inner = loops.image("mnt/inner.img", 4)
    # Read-only from here: the filesystem must not write to the disk on its own (atime, journal
    # commits) while the test compares the disk's bytes before and after the guard ran.
    sh("mount", "-o", "remount,ro", "--", str(where))
    loops.attach(inner, read_only=True)
    before = sha_dev(disk)
    # Mounted: refused (by the mount and by the loop device's backing file, whichever comes first).
    assert_refused(guard(disk), "", disk, before)
    # Lazily unmounted: gone from /proc/mounts, but the loop device still keeps the filesystem busy.
    sh("umount", "-l", "--", str(where))
    assert f"{fs_dev} " not in Path("/proc/self/mounts").read_text()
    assert_refused(guard(disk), "cannot examine", disk, before)


def test_refuses_when_a_process_has_the_disk_open(disk):
    before = sha_dev(disk)
    done = guard(disk, hold=disk)
    assert_refused(done, "is open by process", disk, before)
    assert "(sleep)" in done.stderr


def test_refuses_when_a_process_has_a_partition_open(disk, part):
    before = sha_dev(disk)
    assert_refused(guard(disk, hold=part), "open by process", disk, before)


def test_refuses_when_mounted(disk, fs_dev, loops, tmp_path):
    loops.mount(fs_dev, tmp_path / "m2", "-o", "ro")
    before = sha_dev(disk)
    assert_refused(guard(disk), "is mounted at", disk, before)


def test_refuses_when_held_by_a_device_mapper_target(disk):
    """dm-linear over the disk makes it a holder (/sys/block/<disk>/holders/dm-N)."""
    if not shutil.which("dmsetup"):
        pytest.skip("dmsetup not installed")
    size = sh("blockdev", "--getsz", disk)
    name = f"kc-test-{os.getpid()}"
    made = subprocess.run(["dmsetup", "create", name, "--table", f"0 {size} linear {disk} 0"],
                          capture_output=True, text=True, timeout=30)
    if made.returncode != 0:
        pytest.skip(f"device-mapper unavailable here: {made.stderr.strip()[:120]}")
    try:
        before = sha_dev(disk)
        assert_refused(guard(disk), "is held open by dm-", disk, before)
    finally:
        subprocess.run(["dmsetup", "remove", name], capture_output=True, timeout=30)


def test_unreadable_descriptors_refuse_instead_of_passing(disk):
    """Outside its own PID namespace the guard sees this sandbox's PID 1, whose descriptors it may
    not read (EPERM): that is unknown, so it refuses (fuser read the same EPERM as "not in use")."""
    try:
        os.listdir("/proc/1/fd")
        os.stat(f"/proc/1/fd/{os.listdir('/proc/1/fd')[0]}")
        pytest.skip("every process's descriptors are readable here")
    except PermissionError:
        pass
    before = sha_dev(disk)
    assert_refused(guard(disk, own_proc=False), "cannot read every process's open files", disk, before)
