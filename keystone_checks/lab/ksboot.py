"""The Keystone-shaped guest: a disk that boots the way Keystone boots.

Built once per image: the initrd natively on this machine (``host/ksboot-initrd.sh``), the
disk in a booted lab guest (``guest/ksboot/build.sh``): root
on ``rpool/crypt/system``, UEFI (OVMF) -> systemd-boot -> a dracut systemd
initrd running Keystone's own units (ncrmro/keystone v0.2.0
``modules/os/storage.nix``: bare import, ``systemd-cryptsetup@credstore``, the
credstore mount, ``rpool-load-key``, the credstore closed before switch-root)
-> ``init=/nix/store/...-nixos-system-.../init``.  See docs/lab.md.

Result, under ``<image dir>/ksboot-<hash>/``: ``disk.qcow2`` (the whole
Keystone disk: ESP + rpool) and ``meta.json`` (written last).  A boot gets a
qcow2 overlay and its own copy of the OVMF variable store.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from keystone_checks.lab import build, inventory, recipe
from keystone_checks.lab.errors import LabError
from keystone_checks.lab.paths import build_lock, cache_root, clone_workdir, run_root
from keystone_checks.lab.vm import Guest, overlay

KSBOOT_DIR = recipe.GUEST_DIR / "ksboot"
# dracut runs on the controller, chrooted into a copy of the image's root (natively: ≈ 30 s here
# against ≈ 9 min in the TCG build guest, 2026-12-02); the initrd is identical but for the
# random key file it carries (compared file by file).
HOST_INITRD = Path(__file__).resolve().parent / "host" / "ksboot-initrd.sh"
# Not in the base image; fetched on the host with apt (the guest is offline). dracut-core and what
# it needs beyond the image go only into that chroot (real Keystone hosts carry no dracut);
# iptables, for the NixOS firewall (stage2/firewall-start), into the Keystone disk.
INITRD_PACKAGES = ["dracut-core", "kpartx", "pkgconf"]
GUEST_PACKAGES = ["iptables"]
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
BOOT_TIMEOUT = 600  # OVMF + systemd-boot + initrd + stage 2 under TCG: ~2-3 min measured
# The running state's one boot may share the machine with the Debian lab's guests and builds (CI
# starts it in the background): over 600 s once in a cold run at a load of ≈ 3.5 on 2 cores,
# against 175 s alone (2026-12-02). A boot that stops still ends the wait at once.
RUNNING_BOOT_TIMEOUT = 1500


def ksboot_files() -> dict[str, bytes]:
    return {str(p.relative_to(KSBOOT_DIR)): p.read_bytes()
            for p in sorted(KSBOOT_DIR.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def ksboot_hash(variant: recipe.Variant) -> str:
    return recipe._digest({"base": recipe.base_hash(variant), "lib": recipe.guest_script("lib.sh"),
                           "files": {k: v.decode() for k, v in ksboot_files().items()},
                           "host": HOST_INITRD.read_text(), "packages": [INITRD_PACKAGES, GUEST_PACKAGES],
                           "format": 2})


def ksboot_dir(variant: recipe.Variant) -> Path:
    return build.image_dir(variant) / f"ksboot-{ksboot_hash(variant)}"


def _tar(files: dict[str, bytes], modes: dict[str, int] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), (modes or {}).get(name, 0o644)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def download_debs(packages: list[str]) -> list[Path]:
    """``packages`` and their dependencies, from this machine's apt sources (cached)."""
    dest = cache_root() / "debs" / f"ksboot-{recipe._digest(packages)}"
    dest.mkdir(parents=True, exist_ok=True)
    debs = sorted(dest.glob("*.deb"))
    if debs:
        return debs
    dep = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                          "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances",
                          *packages], capture_output=True, text=True)
    names = sorted({ln for ln in dep.stdout.splitlines() if re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", ln)})
    if dep.returncode or not names:
        raise LabError(f"apt-cache depends {' '.join(packages)} failed: {dep.stderr.strip()}; "
                       "run apt-get update first")
    r = subprocess.run(["apt-get", "download", "-q", *names], cwd=dest, capture_output=True, text=True)
    if r.returncode:
        raise LabError(f"apt-get download failed in {dest}: {r.stderr.strip()[-800:]}")
    return sorted(dest.glob("*.deb"))


@dataclass
class UefiGuest(Guest):
    """A guest that boots its one disk through OVMF (no -kernel): the
    Keystone disk is ``/dev/vda`` (serial kctest0), as the device units in
    the initrd expect."""

    race_resets: list[str] = field(default_factory=list)  # import races reset past (boot_outcome)

    @property
    def disks(self) -> dict[str, Path]:
        return {"vda": self.workdir / "vda.qcow2"}

    @property
    def vars_path(self) -> Path:
        return self.workdir / "OVMF_VARS.fd"

    def command(self, incoming: str | None = None) -> list[str]:
        cmd = ["qemu-system-x86_64", "-name", "keystone-lab", "-machine", "pc",
               "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", str(self.smp),
               "-m", str(self.mem_mb), "-nodefaults", "-display", "none", "-vga", "none",
               "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
               "-drive", f"if=pflash,format=raw,unit=1,file={self.vars_path}",
               "-serial", f"file:{self.workdir / 'serial.log'}",
               "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
               "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{self.port}-:22",
               "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:4b:43:02",
               "-drive", f"if=none,id=vda,file={self.disks['vda']},format=qcow2,cache=unsafe,discard=unmap",
               "-device", "virtio-blk-pci,drive=vda,serial=kctest0"]
        if incoming:
            cmd += ["-incoming", incoming]
        return cmd

    def serial(self) -> str:
        path = self.workdir / "serial.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def reboot(self) -> None:
        """Hard reset (QMP system_reset): the next boot goes through firmware and initrd again."""
        q = self.qmp()
        try:
            q.execute("system_reset")
        finally:
            q.close()


def boot(variant: recipe.Variant, workdir: Path | None = None, wait: bool = True) -> UefiGuest:
    """Boot a fresh overlay of the built Keystone disk; with ``wait``, until ssh answers."""
    src = ksboot_dir(variant)
    workdir = clone_workdir(src, f"the Keystone-shaped disk for {variant.name}", f"--zfs {variant.name} --ksboot",
                            f"{variant.name}-ksboot", workdir)
    g = UefiGuest(workdir=workdir, image=build.image_dir(variant))
    overlay(g.disks["vda"], src / "disk.qcow2")
    shutil.copy(OVMF_VARS, g.vars_path)
    g.start()
    if wait:
        wait_booted(g)
    return g


def host_data(g: Guest) -> dict:
    """Inventory data for a booted Keystone-shaped guest (a deployed host; override "role" for
    the installer booted on its disk). With the credstore passphrase file, as an operator who
    opts in to next-boot-credstore-key sets it (read on the controller, sent on stdin)."""
    from keystone_checks.lab import snapshot

    return {**inventory.ssh_data(g), "role": "deployed", "disk": "/dev/vda", "pool": "rpool",
            "luks_passphrase_file": str(snapshot.passphrase_file(Path(g.image)))}


def running_dir(variant: recipe.Variant) -> Path:
    """The saved state ``running``: the disk booted once to stage 2, its RAM, disk overlay and
    OVMF variable store saved (snapshot.save), so a test's guest is up in ≈ 10 s instead of a
    2-4 min TCG boot. Every reboot a test makes is a real one."""
    return ksboot_dir(variant) / "running"


def ensure_running(variant: recipe.Variant, say=print) -> Path:
    """Build the disk (unless cached), boot it, save the running state (unless cached)."""
    from keystone_checks.lab import snapshot

    dest = running_dir(variant)
    if (dest / "meta.json").exists():
        return dest
    ensure_built(variant, say)
    with build_lock(f"ksboot-{variant.name}"):
        if (dest / "meta.json").exists():
            return dest
        workdir = run_root() / f"build-{variant.name}-ksboot-running-{uuid.uuid4().hex[:6]}"
        g = boot(variant, workdir, wait=False)
        try:
            try:
                booted = wait_booted(g, timeout=RUNNING_BOOT_TIMEOUT)
            except LabError:
                keep = build.image_dir(variant) / "logs" / "ksboot-running-serial.log"
                keep.parent.mkdir(exist_ok=True)
                shutil.copy(g.workdir / "serial.log", keep)  # the workdir goes below
                raise
            snapshot.save(g, dest)  # stops the guest; RAM and the disk overlay into dest
            shutil.copy(g.vars_path, dest / "OVMF_VARS.fd")
            meta = {"boot_seconds": round(booted, 1), "race_resets": g.race_resets}
            (dest / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        finally:
            g.kill()  # save() stopped it already, unless the boot failed
            shutil.rmtree(workdir, ignore_errors=True)
    say(f"[lab] {variant.name}: Keystone guest booted in {meta['boot_seconds']} s, running state saved")
    return dest


def restore(variant: recipe.Variant, workdir: Path | None = None) -> UefiGuest:
    """A fresh copy of the running state (``running_dir``), up when ssh answers."""
    from keystone_checks.lab import snapshot

    src = running_dir(variant)
    workdir = clone_workdir(src, f"the running Keystone-shaped guest for {variant.name}",
                            f"--zfs {variant.name} --ksboot", f"{variant.name}-ksboot", workdir)
    g = UefiGuest(workdir=workdir, image=build.image_dir(variant))
    overlay(g.disks["vda"], src / "vda.qcow2")
    shutil.copy(src / "OVMF_VARS.fd", g.vars_path)
    snapshot.resume(g, src, "the running Keystone-shaped guest")
    return g


def boot_for_tests(variant: recipe.Variant, workdir: Path, build_missing: bool) -> UefiGuest:
    """What the lab tests start from: the running state, built first when asked (KC_LAB_BUILD=1),
    else a missing one is a LabError naming the command to run."""
    build.require_tools(build.RUN_TOOLS)
    if build_missing:
        ensure_running(variant)
    return restore(variant, workdir)


# The installer an operator boots to recover this disk: NixOS installer media have
# VARIANT_ID=installer in /etc/os-release (nixos-anywhere src/get-facts.sh decides with it), their
# own fixed hostid (nixos-images nix/zfs-minimal.nix; the lab's value is its own) and no psmisc.
INSTALLER_OS_RELEASE = """ID=nixos
NAME=NixOS
PRETTY_NAME="NixOS 24.11 (Vicuna)"
VARIANT_ID=installer
VERSION_ID="24.11"
"""
INSTALLER_SETUP = f"""set -eu
cat > /etc/os-release <<'EOF'
{INSTALLER_OS_RELEASE}EOF
zgenhostid -f 4b490001
dpkg -r psmisc >/dev/null 2>&1 || true
modprobe zfs
"""


def installer_on(disk: Path, variant: recipe.Variant, workdir: Path) -> Guest:
    """Boot the lab's installer (the Debian image, -kernel boot, its own ext4 root) with
    ``disk`` (a Keystone disk, e.g. one that stopped in the initrd) as its /dev/vda. The disk
    itself, not an overlay: what the recovery writes stays for the next boot, as on hardware
    (QEMU's image lock refuses it while the deployed guest still runs)."""
    workdir.mkdir(parents=True, exist_ok=True)
    g = Guest(workdir=workdir, image=build.image_dir(variant))
    g.disks["vda"].unlink(missing_ok=True)
    g.disks["vda"].symlink_to(disk.resolve())
    overlay(g.disks["root"], build.image_dir(variant) / "root.qcow2")
    g.start()
    g.wait_ssh()
    rc, _, err = g.run_script(INSTALLER_SETUP, timeout=120)
    if rc:
        g.kill()
        raise LabError(f"making the installer failed: {err.strip()[-800:]}")
    return g


def power_off(g: Guest) -> None:
    """Flush the guest's writes to its disk, then stop QEMU (a reset with nothing in flight)."""
    g.ssh("sync", timeout=60)
    g.kill()


# Terminal control sequences on the console (colours; OVMF's and systemd-boot's cursor and
# screen codes such as ESC[?25l, ESC[=3h): removed before a line is read.
_ANSI = re.compile(r"\x1b\[[0-9;=?]*[A-Za-z]")
# What the serial console shows when the boot stops in the initrd (systemd's own lines).
_STOPPED = re.compile(r"Entering emergency mode|Failed to start .*|Dependency failed for .*|"
                      r"Timed out waiting for device .*")


def initrd_stop_reason(serial: str) -> str | None:
    """The first failure the initrd printed, or None if it printed none."""
    for line in _ANSI.sub("", serial).splitlines():
        m = _STOPPED.search(line)
        if m:
            return m.group(0).strip()
    return None


# The kernel has started once its EFI stub or the initrd's systemd printed (loglevel=4 hides
# the kernel's own banner); before that, the firmware and the boot loader own the console.
_KERNEL_STARTED = re.compile(r"EFI stub: |Welcome to ")
# Firmware (OVMF BdsDxe) and systemd-boot lines that say why nothing was started.
_LOADER_STOPPED = re.compile(r"(?i)(error|failed|not found|no bootable|unable|invalid)[^\r\n]*")
# OVMF gave up on a boot option (then it tries network boot, printing on): the disk did not boot.
_FIRMWARE_GAVE_UP = re.compile(r"BdsDxe: failed to (load|start) Boot|No bootable option or device was found")
LOADER_QUIET = 60  # s without console output before the kernel started: stopped in firmware/loader


def loader_stop_reason(serial: str) -> str | None:
    """Why the firmware or the boot loader did not start a kernel: its first error line (ANSI
    escapes removed), or None when the kernel started or nothing says why."""
    text = _ANSI.sub("\n", serial)  # the loader positions its lines with cursor codes
    if _KERNEL_STARTED.search(text):
        return None
    for line in text.replace("\r", "\n").splitlines():
        m = _LOADER_STOPPED.search(line)
        if m:
            return line.strip()
    return None


# Keystone's import-rpool-bare imports once, with no retry (v0.2.0 storage.nix l.79-122, followed
# as written): under TCG load it has lost the race with the disk's probing about once in twenty
# boots, with ZFS's ENXIO refusal (libzfs zpool_standard_error), or, when udev's coldplug took
# longer than the 90 s device timeout, before the disk was probed at all: "no such pool available"
# (seen once, 2026-12-02, udev trigger at 1 min 38 s while two guests and an image build ran).
# No reboot fault removes the disk, so neither is a fault's stop. docs/lab.md "import race".
IMPORT_RACE = re.compile(r"cannot import '[^']+': (one or more devices is currently unavailable|no such pool available)")


def boot_outcome(g: UefiGuest, timeout: float = BOOT_TIMEOUT, since: int = 0, race_resets: int = 1) -> str | None:
    """Wait for the boot to end: None when stage 2 answers ssh, else why it stopped: the initrd's
    failure line, or, when no kernel started, the boot loader's or firmware's first error line once
    OVMF gave up on the disk (it then tries network boot) or the console stayed quiet for
    LOADER_QUIET s. ``since``: where this boot starts in the serial log (after a reset,
    the log's length before it).

    A stop on the import race (IMPORT_RACE) is not the fault under test: the harness resets the
    guest, as an operator at the console would, at most ``race_resets`` times per call, and
    records it in ``g.race_resets`` (the tests put it in their rows). The guest's initrd itself
    keeps upstream's single import, so the stop an operator meets is never hidden."""
    t0 = last_change = time.monotonic()
    last_len = -1
    while time.monotonic() - t0 < timeout:
        if not g.alive():
            raise LabError(f"QEMU exited; see {g.workdir / 'qemu.log'}")
        serial = g.serial()[since:]
        if "Entering emergency mode" in serial:
            race = IMPORT_RACE.search(_ANSI.sub("", serial))
            if race and race_resets > 0:
                race_resets -= 1
                g.race_resets.append(race.group(0))
                since += len(serial)
                g.reboot()
                last_len, last_change = -1, time.monotonic()
                continue
            return initrd_stop_reason(serial) or "Entering emergency mode"
        if _FIRMWARE_GAVE_UP.search(serial) and not _KERNEL_STARTED.search(serial):
            return loader_stop_reason(serial)
        if len(serial) != last_len:
            last_len, last_change = len(serial), time.monotonic()
        elif time.monotonic() - last_change > LOADER_QUIET and not _KERNEL_STARTED.search(serial):
            return loader_stop_reason(serial) or f"no kernel started; console quiet for {LOADER_QUIET} s"
        if g.ssh_bytes("true", timeout=15)[0] == 0:
            return None
        time.sleep(2)
    raise LabError(f"the boot neither stopped nor came up in {timeout:.0f} s; see {g.workdir / 'serial.log'}")


def wait_booted(g: UefiGuest, timeout: float = BOOT_TIMEOUT) -> float:
    """Wait for ssh; raise with the initrd's (or boot loader's) own failure line when it stops."""
    t0 = time.monotonic()
    stopped = boot_outcome(g, timeout)
    if stopped:
        raise LabError(f"boot stopped: {stopped}; see {g.workdir / 'serial.log'}")
    return time.monotonic() - t0


def ensure_built(variant: recipe.Variant, say=print) -> Path:
    """Build the Keystone disk for ``variant`` unless cached (≈ 11 min: the initrd natively, the disk under TCG)."""
    dest = ksboot_dir(variant)
    if (dest / "meta.json").exists():
        return dest
    with build_lock(f"ksboot-{variant.name}"):  # a background `lab build` and the tests may both ask
        if (dest / "meta.json").exists():
            return dest
        return _build(variant, dest, say)


def build_initrd(variant: recipe.Variant, key: Path, out: Path) -> None:
    """The Keystone initrd, built natively on this machine (host/ksboot-initrd.sh)."""
    debs = download_debs(INITRD_PACKAGES)
    work = run_root() / f"initrd-{variant.name}-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    r = subprocess.run(["bash", str(HOST_INITRD), str(build.image_dir(variant) / "root.qcow2"), str(KSBOOT_DIR),
                        str(debs[0].parent), str(key), str(out), str(work)], capture_output=True, text=True)
    if r.returncode or not out.exists():
        raise LabError(f"building the Keystone initrd on this machine failed (exit {r.returncode}; it needs "
                       f"root and loop devices): {r.stderr.strip()[-1500:]}")


def _build(variant: recipe.Variant, dest: Path, say) -> Path:
    from keystone_checks.lab.snapshot import Clone, guest_prelude

    for tool in (OVMF_CODE, OVMF_VARS):
        if not tool.exists():
            raise LabError(f"{tool} missing: install the 'ovmf' package (bash .ci/setup-lab.sh)")
    build.build(variant, say=say)
    workdir = run_root() / f"build-{variant.name}-ksboot-{uuid.uuid4().hex[:6]}"
    t0 = time.monotonic()
    say(f"[lab] {variant.name}: building the Keystone-shaped disk (≈ 11 min alone)")
    workdir.mkdir(parents=True)
    g: Clone | None = None
    try:
        # The credstore's lab key slot (build.sh): generated here, carried by the initrd and the disk.
        key = workdir / "credstore.key"
        key.touch(mode=0o600)
        key.write_bytes(os.urandom(32))
        build_initrd(variant, key, workdir / "initrd")
        initrd_seconds = time.monotonic() - t0
        g = Clone.boot_blank(variant, workdir)
        host = {"host/credstore.key": key.read_bytes(), "host/initrd": (workdir / "initrd").read_bytes()} \
            | {f"host/debs/{d.name}": d.read_bytes() for d in download_debs(GUEST_PACKAGES)}
        files = ksboot_files()
        payload = _tar(host | {f"ksboot/{k}": v for k, v in files.items()},
                       {"host/credstore.key": 0o400}
                       | {f"ksboot/{k}": 0o755 for k in files if k.endswith(".sh") or k == "import-rpool-bare"})
        rc, _, err = g.ssh_bytes("rm -rf /run/ks && mkdir -p /run/ks && tar -C /run/ks -xf -",
                                 stdin=payload, timeout=300)
        if rc:
            raise LabError(f"copying the ksboot files into the build guest failed: {err.decode()[-500:]}")
        script = guest_prelude(variant) + "KS=/run/ks/ksboot\nHOST=/run/ks/host\n" + \
            (KSBOOT_DIR / "build.sh").read_text()
        rc, out, err_s = g.run_detached(script, timeout=2400, unit="ksboot-build")
        log = build.image_dir(variant) / "logs" / "ksboot-build.log"
        log.parent.mkdir(exist_ok=True)
        log.write_text(f"rc={rc}\n--- stdout\n{out}\n--- stderr\n{err_s}\n--- serial\n{g.serial_tail()}\n")
        if rc:
            raise LabError(f"building the Keystone disk failed (exit {rc}); see {log}:\n{err_s[-1500:]}")
        g.ssh("systemctl poweroff", timeout=30)
        deadline = time.monotonic() + 60
        while g.alive() and time.monotonic() < deadline:
            time.sleep(1)
        g.kill()
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        shutil.move(str(g.disks["vda"]), tmp / "disk.qcow2")
        meta = {"variant": variant.name, "hash": ksboot_hash(variant),
                "build_seconds": round(time.monotonic() - t0, 1), "initrd_seconds": round(initrd_seconds, 1),
                "disk_bytes": (tmp / "disk.qcow2").stat().st_size}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    finally:
        if g is not None:
            g.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    say(f"[lab] {variant.name}: Keystone disk built in {meta['build_seconds']} s")
    return dest
