"""One QEMU/TCG guest: disks as throw-away qcow2 overlays, ssh on a loopback
port, a QMP socket for stop/migrate/cont, and a hard kill by PID.

Device order matters and is fixed: the test disk is the first virtio disk
(``/dev/vda``, serial ``kctest``), the root disk second (found by label).  The
same command line is used for cold boots and for RAM restores, which is what
makes a saved migration stream loadable into a fresh clone.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from keystone_checks.lab import recipe
from keystone_checks.lab.errors import LabError
from keystone_checks.lab.qmp import QMP


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qemu_img(*args: str) -> None:
    r = subprocess.run(["qemu-img", *args], capture_output=True, text=True)
    if r.returncode:
        raise LabError(f"qemu-img {' '.join(args)}: {r.stderr.strip()}")


def overlay(path: Path, backing: Path) -> None:
    qemu_img("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(backing), str(path))


@dataclass
class Guest:
    """A running (or about to run) guest in ``workdir``."""

    workdir: Path
    image: Path  # the built image dir (vmlinuz, initrd.img, ssh key)
    port: int = field(default_factory=free_port)
    # Loopback port forwarded to guest port 2222: the lab's own control sshd,
    # started only by faults that break the normal ssh path (see faults.py).
    ctl_port: int = field(default_factory=free_port)
    mem_mb: int = recipe.GUEST_MEM_MB
    smp: int = 1
    pid: int | None = None
    # Reuse one ssh connection per port (ControlMaster).  Only for read-only
    # bulk work like capture: a kept-open master would hide faults that break
    # new ssh logins, so it is off by default.
    multiplex: bool = False

    # ---- files -------------------------------------------------------------------------
    @property
    def key(self) -> Path:
        return self.image / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.image / "ssh" / "known_hosts"

    @property
    def qmp_path(self) -> Path:
        return self.workdir / "qmp.sock"

    @property
    def disks(self) -> dict[str, Path]:
        return {"vda": self.workdir / "vda.qcow2", "root": self.workdir / "root.qcow2"}

    # ---- lifecycle -----------------------------------------------------------------------
    def command(self, incoming: str | None = None) -> list[str]:
        cmd = ["qemu-system-x86_64", "-name", "keystone-lab", "-machine", "pc",
               "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", str(self.smp),
               "-m", str(self.mem_mb), "-nodefaults", "-display", "none", "-vga", "none",
               "-kernel", str(self.image / "vmlinuz"), "-initrd", str(self.image / "initrd.img"),
               "-append", f"root=LABEL={recipe.ROOT_LABEL} ro console=ttyS0 quiet",
               "-serial", f"file:{self.workdir / 'serial.log'}",
               "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
               "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{self.port}-:22,"
               f"hostfwd=tcp:127.0.0.1:{self.ctl_port}-:2222",
               "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:4b:43:01"]
        for name, serial in (("vda", "kctest0"), ("root", "kcroot")):
            cmd += ["-drive", f"if=none,id={name},file={self.disks[name]},format=qcow2,cache=unsafe,discard=unmap",
                    "-device", f"virtio-blk-pci,drive={name},serial={serial}"]
        if incoming:
            cmd += ["-incoming", incoming]
        return cmd

    def start(self, incoming: str | None = None) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.qmp_path.exists():
            self.qmp_path.unlink()
        # QEMU truncates the serial log only once it opens it: a restarted guest's log would show
        # the previous boot's console until then (a stale "Entering emergency mode").
        (self.workdir / "serial.log").unlink(missing_ok=True)
        log = open(self.workdir / "qemu.log", "ab")
        proc = subprocess.Popen(self.command(incoming), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, start_new_session=True)
        self.pid = proc.pid
        self._proc = proc
        (self.workdir / "guest.json").write_text(json.dumps(
            {"pid": self.pid, "port": self.port, "ctl_port": self.ctl_port,
             "image": str(self.image), "owner": os.getpid()}))

    def serial_tail(self, chars: int = 6000) -> str:
        """The end of this guest's console log (for a build log when something failed)."""
        path = self.workdir / "serial.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def alive(self) -> bool:
        if self.pid is None:
            return False
        proc = getattr(self, "_proc", None)
        if proc is not None:
            return proc.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        """Hard-kill this guest's QEMU (by PID, never by name)."""
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc = getattr(self, "_proc", None)
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.pid = None

    def qmp(self, timeout: float = 30) -> QMP:
        return QMP(str(self.qmp_path), timeout=timeout)

    # ---- ssh -------------------------------------------------------------------------------
    def ssh_argv(self, port: int | None = None) -> list[str]:
        return ["ssh", "-i", str(self.key), "-p", str(port or self.port),
                "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "StrictHostKeyChecking=accept-new", "-o", "BatchMode=yes",
                "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=6",
                *(["-o", "ControlMaster=auto", "-o", f"ControlPath={self.workdir}/mux-%p",
                   "-o", "ControlPersist=30"] if self.multiplex else []),
                "root@127.0.0.1"]

    def ssh_bytes(self, cmd: str, timeout: float = 120, stdin: bytes | None = None,
                  port: int | None = None) -> tuple[int, bytes, bytes]:
        """Run ``cmd`` with the guest's /bin/sh; exit 255 means ssh itself failed."""
        try:
            r = subprocess.run(self.ssh_argv(port) + ["--", cmd], input=stdin or b"",
                               capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            return 124, e.stdout or b"", (e.stderr or b"") + b"\n[lab] ssh command timed out"
        return r.returncode, r.stdout, r.stderr

    def ssh(self, cmd: str, timeout: float = 120, stdin: str | None = None,
            port: int | None = None) -> tuple[int, str, str]:
        rc, out, err = self.ssh_bytes(cmd, timeout, stdin.encode() if stdin else None, port)
        return rc, out.decode(errors="replace"), err.decode(errors="replace")

    def run_script(self, script: str, timeout: float = 600) -> tuple[int, str, str]:
        """Pipe a shell script to ``sh -s`` in the guest."""
        return self.ssh("sh -s", timeout=timeout, stdin=script)

    def run_detached(self, script: str, timeout: float = 2400, unit: str = "kc-lab-job") -> tuple[int, str, str]:
        """Run a long script as a transient systemd unit in the guest and poll it with short ssh
        calls: one ssh session held for many minutes dies when a TCG guest under heavy I/O does
        not answer its keepalives for 30 s (seen once while building the Keystone disk: exit 255
        after 15 min), although the job itself goes on. Returns (exit status, stdout, stderr)."""
        d = f"/run/{unit}"
        rc, _, err = self.ssh(f"rm -rf {d} && mkdir -p {d} && cat > {d}/job.sh", stdin=script, timeout=120)
        if rc:
            return rc, "", err
        rc, _, err = self.ssh(f"systemd-run --quiet --unit={unit} -p StandardOutput=file:{d}/out "
                              f"-p StandardError=file:{d}/err sh {d}/job.sh", timeout=120)
        if rc:
            return rc, "", err
        deadline, last_answer = time.monotonic() + timeout, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(10)
            rc, out, _ = self.ssh(f"systemctl show -p ActiveState -p ExecMainStatus {unit}", timeout=60)
            if rc == 0:
                last_answer = time.monotonic()
                state = dict(line.split("=", 1) for line in out.split())
                if state.get("ActiveState") in ("inactive", "failed"):
                    _, out_s, _ = self.ssh(f"cat {d}/out", timeout=120)
                    _, err_s, _ = self.ssh(f"cat {d}/err", timeout=120)
                    return int(state.get("ExecMainStatus") or 1), out_s, err_s
            elif time.monotonic() - last_answer > 300 or not self.alive():
                return 255, "", f"[lab] the guest stopped answering ssh while running {unit}"
        return 124, "", f"[lab] {unit} still running after {timeout:.0f} s"

    def wait_ssh(self, timeout: float = 240, port: int | None = None) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if not self.alive():
                raise LabError(f"QEMU exited; see {self.workdir / 'qemu.log'} and serial.log")
            rc, _, _ = self.ssh_bytes("true", timeout=15, port=port)
            if rc == 0:
                return time.monotonic() - t0
            time.sleep(1)
        raise LabError(f"guest ssh on 127.0.0.1:{self.port} not up after {timeout:.0f} s; "
                       f"see {self.workdir / 'serial.log'}")

    def boot_id(self, port: int | None = None) -> str:
        rc, out, _ = self.ssh("cat /proc/sys/kernel/random/boot_id", timeout=20, port=port)
        return out.strip() if rc == 0 else ""

    def run_phased(self, script: str, prelude: str = "", timeout: float = 900) -> tuple[int, str, str]:
        """Run a script whose parts are separated by ``#@reboot`` lines: after
        each part the guest is hard-rebooted (sysrq) and the next part runs once
        ssh answers again with a new boot id."""
        parts = script.split("\n#@reboot\n")
        outs, errs = [], []
        for i, part in enumerate(parts):
            rc, out, err = self.run_script(prelude + part, timeout=timeout)
            outs.append(out)
            errs.append(err)
            if rc != 0:
                return rc, "".join(outs), "".join(errs)
            if i < len(parts) - 1:
                before = self.boot_id()
                self.ssh("sync; (sleep 1; echo b > /proc/sysrq-trigger) >/dev/null 2>&1 </dev/null &",
                         timeout=20)
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    time.sleep(2)
                    bid = self.boot_id()
                    if bid and bid != before:
                        break
                else:
                    return 124, "".join(outs), "".join(errs) + "\n[lab] guest did not come back after reboot"
        return 0, "".join(outs), "".join(errs)

    def sync_clock(self) -> None:
        """After a RAM restore the guest clock is where it was at save time."""
        self.ssh(f"date -u -s @{time.time():.3f} >/dev/null; hwclock -w 2>/dev/null; true", timeout=30)

    def describe(self) -> str:
        return " ".join(shlex.quote(a) for a in self.ssh_argv())
