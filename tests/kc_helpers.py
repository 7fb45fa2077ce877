"""Shared test helpers: a real OpenSSH sshd on loopback, and running the real pyinfra CLI.

A plain module (not conftest.py) so tests import it by name: tests/lab/ has a conftest of its own,
and two conftest modules cannot both be imported as `conftest`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshd:
    """A throwaway sshd on 127.0.0.1 with its own host key; logs every exec'd command (one per line)."""

    def __init__(self, root: Path, path: list[Path] | None = None):
        self.root = root
        self.path = path or []  # directories put first on the session's PATH (fake binaries)
        self.port = free_port()
        self.client_key = root / "client_key"
        self.exec_log = root / "exec.log"
        self.known_hosts = root / "known_hosts"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Sshd:
        if not Path(SSHD).exists():
            pytest.fail("OpenSSH sshd is not installed: run .ci/run or `apt-get install openssh-server`")
        Path("/run/sshd").mkdir(exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.root / "host_key")], check=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.client_key)], check=True)
        auth = self.root / "authorized_keys"
        auth.write_text((self.root / "client_key.pub").read_text())
        wrapper = self.root / "logexec.sh"
        # Record each exec channel, then run it unchanged: the count is what pyinfra really opened.
        wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$SSH_ORIGINAL_COMMAND" | head -c 200 | tr "\\n" " " >> {self.exec_log}\n'
                           f'echo >> {self.exec_log}\n'
                           + "".join(f'PATH={d}:"$PATH"\n' for d in self.path)
                           + 'export PATH\nexec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n')
        wrapper.chmod(0o755)
        config = self.root / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.root / 'host_key'}\n"
            f"AuthorizedKeysFile {auth}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            f"UsePAM no\nStrictModes no\nPidFile {self.root / 'sshd.pid'}\nForceCommand {wrapper}\n"
            "MaxStartups 100\nMaxSessions 100\nLogLevel ERROR\n"
        )
        host_pub = (self.root / "host_key.pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=open(self.root / "sshd.err", "w"))
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"sshd did not start: {(self.root / 'sshd.err').read_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def execs(self) -> list[str]:
        return self.exec_log.read_text().splitlines() if self.exec_log.exists() else []

    def host_data(self) -> dict:
        return {"ssh_hostname": "127.0.0.1", "ssh_port": self.port, "ssh_user": "root",
                "ssh_key": str(self.client_key), "ssh_known_hosts_file": str(self.known_hosts),
                "ssh_strict_host_key_checking": "yes"}


def write_inventory(path: Path, hosts: dict[str, dict]) -> Path:
    """A pyinfra inventory file with one group 'hosts': name -> host data."""
    items = ",\n    ".join(f"({name!r}, {data!r})" for name, data in hosts.items())
    path.write_text(f"hosts = [\n    {items},\n]\n")
    return path


def run_pyinfra(inventory: Path, playbook: str, *args: str, env: dict | None = None, cwd: Path | None = None,
                timeout: int = 180) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "pyinfra"
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "pyinfra"]
    command = [*launcher, "-y", str(inventory), str(REPO / "playbooks" / playbook), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd or REPO,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def read_report(path: Path) -> dict:
    assert path.exists(), f"no report written at {path}"
    return json.loads(path.read_text())


def outcomes(report: dict, host: str) -> dict[str, str]:
    (entry,) = [h for h in report["hosts"] if h["name"] == host]
    return {r["check"]: r["outcome"] for r in entry["results"]}


FREEZER = Path("/sys/fs/cgroup/freezer")


@pytest.fixture
def frozen_cgroup():
    """A frozen cgroup-v1 freezer group: a process that joins it sleeps uninterruptibly (D state) and
    ignores SIGKILL until thawed - what `zpool status` on a suspended pool does. (Import it into a
    test module to use it as a fixture.)"""
    import uuid

    if not (FREEZER.is_dir() and os.access(FREEZER, os.W_OK)):
        pytest.skip("needs a writable cgroup-v1 freezer (/sys/fs/cgroup/freezer) to make a D-state process")
    group = FREEZER / f"kc-test-{uuid.uuid4().hex[:12]}"
    group.mkdir()
    (group / "freezer.state").write_text("FROZEN\n")
    yield group
    (group / "freezer.state").write_text("THAWED\n")  # the pending SIGKILLs now take effect
    deadline = time.time() + 10
    while (group / "tasks").read_text().strip() and time.time() < deadline:
        time.sleep(0.05)
    group.rmdir()


# -- the lab (tests/lab) ----------------------------------------------------------------------------
# The lab VM's known limits (1 GiB RAM, TCG load), given to every lab run as host data.
LAB_DATA = ["--data", "min_ram_bytes=268435456", "--data", "max_load_per_cpu=1000"]
EXIT_UNKNOWN = 3  # README "Outcomes and exit codes": an unreachable host is unknown
# An installer's own root, fingerprinted: what is mounted at / and a manifest of /etc's regular
# files on the root filesystem (-xdev: not a credstore mounted there meanwhile) and of /usr/bin.
LAB_LIVE_ROOT_LISTING = ("findmnt -n -o SOURCE,FSTYPE,OPTIONS /; "
                         "find /etc -xdev -type f -printf '%p %s %T@\\n' | sort; ls -l --time-style=+%s /usr/bin")
LAB_LIVE_ROOT = f"{{ {LAB_LIVE_ROOT_LISTING}; }} | sha256sum"


def guest_out(g, cmd: str) -> str:
    """A lab guest's stdout for ``cmd``, which must succeed (the Keystone-shaped guest's tests)."""
    rc, out, err = g.ssh(cmd, timeout=120)
    assert rc == 0, f"{cmd}: {err}"
    return out


def lab_playbook(host: tuple[str, dict], tmp_path: Path, tag: str, playbook: str, *data: str,
                 timeout: int = 900) -> dict:
    """Run one phase/fix playbook (real pyinfra CLI) on one lab host; its report entry."""
    from keystone_checks.lab import inventory

    inv = inventory.write(tmp_path / f"{tag}-inventory.py", [host])
    report = tmp_path / f"{tag}.json"
    done = run_pyinfra(inv, playbook, *LAB_DATA, *[a for d in data for a in ("--data", d)],
                       "--data", f"report={report}", timeout=timeout)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    (entry,) = read_report(report)["hosts"]
    return entry


def failing(entry: dict) -> dict[str, object]:
    """Checks a report entry fails or could not evaluate, beyond the info-level ones (the lab VM
    has no TPM: the TPM checks are info), with what they found."""
    return {r["check"]: r.get("found") for r in entry["results"]
            if r["outcome"] in ("fail", "error") and r["severity"] != "info"}
