"""A fleet of real OpenSSH hosts on this machine, behind a userspace delay proxy.

    from bench.fleet import Fleet
    with Fleet(10, rtt_ms=50) as fleet:
        fleet.hosts            # [(name, address, port), ...]  -> the proxied sshd of each host
        fleet.client_key       # private key accepted by every host (as root)
        fleet.known_hosts      # known_hosts file with every host's own key, for address:port above
        fleet.write_pyinfra_inventory(path)
        fleet.set_rtt(10)      # change the injected latency without restarting anything

Each host is one ``/usr/sbin/sshd -D`` process with its own config and host key, listening on
its own loopback address (127.77.x.y) and a kernel-chosen port; in front of it the delay proxy
(bench/delayproxy.py, one process for all hosts) listens on the same address, another port, and
adds ``rtt_ms / 2`` per direction.  Each sshd runs in its own mount + UTS namespace (`unshare`):
its hostname is the host name and /root is a clean per-host home (no pyenv .bashrc); otherwise the
hosts share this machine's filesystem, so probes read this machine's /proc, /sys, /etc.

Every process started here is tracked by PID and terminated (then killed) on exit, on exceptions
and on SIGINT/SIGTERM delivered to the Python process; the temporary directory is removed.
Requires root (sshd must switch users) and openssh-server (bench/setup.sh installs it).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"
HERE = Path(__file__).resolve().parent
PROXY = HERE / "delayproxy.py"


def _free_port(addr: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


HOST_NICE = 10  # scheduling priority of the simulated hosts (see _start_sshd)


def _pdeathsig() -> None:
    """In the child before exec: get SIGTERM if the benchmark process dies (even by SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def descendants(pid: int) -> list[int]:
    """PIDs of all live descendants of pid (from /proc), children before grandchildren."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(0), []):
            out.append(c)
            todo.append(c)
    return out


def proc_start(pid: int) -> str | None:
    """Start time of pid (field 22 of /proc/pid/stat) - identifies a process across PID reuse."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()[19]


def host_address(i: int) -> str:
    """Loopback address of host i (0-based); 127.77.0.1 ... 127.77.3.250 etc."""
    return f"127.77.{i // 250}.{i % 250 + 1}"


def _banner_ok(addr: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((addr, port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


SSHD_CONFIG = """\
ListenAddress {addr}:{port}
HostKey {hostkey}
PidFile none
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
MaxSessions 200
MaxStartups 1000:30:2000
MaxAuthTries 10
LoginGraceTime 60
ClientAliveInterval 0
Subsystem sftp internal-sftp
LogLevel ERROR
"""


class Fleet:
    def __init__(self, n: int, rtt_ms: float = 0.0, name_prefix: str = "h", workdir: str | None = None):
        if n < 1 or n > 1000:
            raise ValueError("n must be 1..1000")
        self.n = n
        self.rtt_ms = float(rtt_ms)
        self.name_prefix = name_prefix
        self._workdir_arg = workdir
        self.dir: Path | None = None
        self.hosts: list[tuple[str, str, int]] = []  # (name, address, proxied port)
        self.direct: list[tuple[str, str, int]] = []  # (name, address, sshd port) - no delay
        self.host_keys: dict[str, str] = {}  # name -> "ssh-ed25519 AAAA..."
        self.client_key = ""
        self.known_hosts = ""
        self._sshd: list[subprocess.Popen] = []
        self._proxy: subprocess.Popen | None = None
        self._old_handlers: dict[int, object] = {}

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Fleet:
        self._install_signal_handlers()
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _install_signal_handlers(self) -> None:
        # SIGTERM -> KeyboardInterrupt-like exception so that __exit__ runs; SIGINT already raises.
        def _raise(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")

        try:
            self._old_handlers[signal.SIGTERM] = signal.signal(signal.SIGTERM, _raise)
        except ValueError:  # not in main thread
            pass

    def _start(self) -> None:
        if not os.path.exists(SSHD):
            raise RuntimeError(f"{SSHD} missing: run bench/setup.sh (apt-get install openssh-server)")
        if os.geteuid() != 0:
            raise RuntimeError("the fleet needs root (sshd privilege separation, root logins)")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privsep directory
        self.dir = Path(self._workdir_arg or tempfile.mkdtemp(prefix="kc-fleet-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        d = self.dir

        # one shared client key
        self.client_key = str(d / "client_ed25519")
        self._keygen(self.client_key, "kc-bench-client")
        (d / "authorized_keys").write_text(Path(self.client_key + ".pub").read_text())
        os.chmod(d / "authorized_keys", 0o600)

        # host keys: generate in parallel (ssh-keygen is ~5 ms each but serial adds up at N=100)
        names = [f"{self.name_prefix}{i + 1:03d}" for i in range(self.n)]
        procs = []
        for name in names:
            hd = d / name
            hd.mkdir()
            procs.append(subprocess.Popen(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(hd / "ssh_host_ed25519_key")],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        for p in procs:
            if p.wait() != 0:
                raise RuntimeError("ssh-keygen failed: " + p.stderr.read().decode())
            p.stderr.close()

        # sshd per host
        for i, name in enumerate(names):
            self._start_sshd(i, name)
        deadline = time.monotonic() + 30
        pending = list(range(self.n))
        while pending:
            for p in self._sshd:
                if p.poll() is not None:
                    raise RuntimeError(f"sshd exited early (rc={p.returncode}); see {d}/*/sshd.log")
            pending = [i for i in pending if not _banner_ok(self.direct[i][1], self.direct[i][2])]
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"sshd not ready on {len(pending)} hosts")
            if pending:
                time.sleep(0.05)

        # one delay proxy for all hosts
        self._start_proxy()

        # known_hosts for the proxied address:port (the one clients use) and the direct one
        lines = []
        for (name, addr, pport), (_, _, dport) in zip(self.hosts, self.direct):
            key = self.host_keys[name]
            lines.append(f"[{addr}]:{pport} {key}")
            lines.append(f"[{addr}]:{dport} {key}")
        self.known_hosts = str(d / "known_hosts")
        Path(self.known_hosts).write_text("\n".join(lines) + "\n")

    def _keygen(self, path: str, comment: str) -> None:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
                       check=True, stdout=subprocess.DEVNULL)

    def _start_sshd(self, i: int, name: str) -> None:
        assert self.dir is not None
        hd = self.dir / name
        addr = host_address(i)
        hostkey = hd / "ssh_host_ed25519_key"
        pub = Path(str(hostkey) + ".pub").read_text().split()
        self.host_keys[name] = f"{pub[0]} {pub[1]}"
        home = hd / "root"
        home.mkdir(mode=0o700, exist_ok=True)
        (home / ".bashrc").write_text("# bench host: intentionally empty\n")
        for _attempt in range(5):
            port = _free_port(addr)
            conf = hd / "sshd_config"
            conf.write_text(SSHD_CONFIG.format(addr=addr, port=port, hostkey=hostkey,
                                               authorized_keys=self.dir / "authorized_keys"))
            log = open(hd / "sshd.log", "ab")
            # Each host gets its own mount + UTS namespace: hostname = host name, and a clean
            # /root (this machine's /root/.bashrc runs `pyenv init`, ~300 ms per ssh exec, which
            # no real server pays and which would swamp every measurement).
            # At nice 10, like every simulated host's work (bench/tools/probes_local.py too): here the
            # hosts share the controller's 2 cores, and at equal priority hundreds of probe processes
            # starve the controller's single event-loop thread, which no real fleet does (each host
            # has its own CPU). Every tool meets the same niced hosts.
            script = (f'hostname {name} && mount --bind {home} /root && '
                      f'exec nice -n {HOST_NICE} {SSHD} -D -e -f {conf}')
            p = subprocess.Popen(["unshare", "--mount", "--uts", "--propagation", "private", "--",
                                  "/bin/sh", "-c", script], stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=log, start_new_session=True,
                                 preexec_fn=_pdeathsig)
            log.close()
            time.sleep(0.02)
            if p.poll() is None:
                self._sshd.append(p)
                self.direct.append((name, addr, port))
                return
            # port race lost: try another port
        raise RuntimeError(f"could not start sshd for {name}; see {hd}/sshd.log")

    def _start_proxy(self) -> None:
        assert self.dir is not None
        routes = [[addr, 0, addr, port] for (_, addr, port) in self.direct]
        cfg = self.dir / "proxy.json"
        cfg.write_text(json.dumps({"one_way_ms": self.rtt_ms / 2.0, "routes": routes}))
        self._proxy = subprocess.Popen(
            [sys.executable, str(PROXY), str(cfg)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(self.dir / "proxy.log", "ab"), start_new_session=True, text=True, bufsize=1,
            preexec_fn=_pdeathsig)
        line = self._proxy_readline(timeout=30)
        if not line.startswith("READY "):
            raise RuntimeError(f"delay proxy failed to start: {line!r}; see {self.dir}/proxy.log")
        bound = json.loads(line[6:])
        self.hosts = [(name, addr, int(b[1])) for (name, addr, _), b in zip(self.direct, bound)]

    def _proxy_readline(self, timeout: float) -> str:
        assert self._proxy is not None and self._proxy.stdout is not None
        r, _, _ = select.select([self._proxy.stdout], [], [], timeout)
        if not r:
            raise RuntimeError("delay proxy did not answer")
        return self._proxy.stdout.readline().strip()

    def set_rtt(self, rtt_ms: float) -> None:
        """Change the injected round-trip latency for new and existing connections."""
        assert self._proxy is not None and self._proxy.stdin is not None
        self._proxy.stdin.write(f"delay {float(rtt_ms) / 2.0}\n")
        self._proxy.stdin.flush()
        line = self._proxy_readline(timeout=10)
        if not line.startswith("OK"):
            raise RuntimeError(f"delay proxy: {line!r}")
        self.rtt_ms = float(rtt_ms)

    def proxy_stats(self) -> dict:
        assert self._proxy is not None and self._proxy.stdin is not None
        self._proxy.stdin.write("stats\n")
        self._proxy.stdin.flush()
        line = self._proxy_readline(timeout=10)
        return json.loads(line[6:])

    @property
    def pids(self) -> list[int]:
        pids = [p.pid for p in self._sshd]
        if self._proxy is not None:
            pids.append(self._proxy.pid)
        return pids

    def close(self) -> None:
        procs = list(self._sshd)
        if self._proxy is not None:
            procs.append(self._proxy)
        # sshd forks one child per connection, which calls setsid(): find the listener's
        # descendants by PID (they are ours) and end them along with the listener.
        victims = []
        for p in procs:
            if p.poll() is None:
                victims.extend(descendants(p.pid))
                victims.append(p.pid)
        victims = [(pid, proc_start(pid)) for pid in victims]
        for pid, _ in victims:
            try:
                os.kill(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + 5
        for p in procs:
            try:
                p.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for pid, start in victims:
            if start is not None and proc_start(pid) == start:  # still the same process
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self._proxy is not None:
            for f in (self._proxy.stdin, self._proxy.stdout):
                try:
                    f and f.close()
                except OSError:
                    pass
        self._sshd = []
        self._proxy = None
        if self.dir is not None and self._workdir_arg is None:
            shutil.rmtree(self.dir, ignore_errors=True)
        for sig, h in self._old_handlers.items():
            try:
                signal.signal(sig, h)
            except (ValueError, TypeError):
                pass
        self._old_handlers = {}

    # ------------------------------------------------------------------ inventories
    def host_vars(self) -> list[tuple[str, dict]]:
        return [
            (name, {
                "ssh_hostname": addr,
                "ssh_port": port,
                "ssh_user": "root",
                "ssh_key": self.client_key,
                "ssh_known_hosts_file": self.known_hosts,
                "ssh_strict_host_key_checking": "yes",
            })
            for (name, addr, port) in self.hosts
        ]

    def write_pyinfra_inventory(self, path: str | os.PathLike, group: str = "fleet",
                                host_data: dict | None = None) -> str:
        """Write a pyinfra inventory.py: one group ``group`` of (name, data) tuples with every host's
        SSH data, plus ``host_data`` (e.g. keystone-checks' role/disk) merged into each host."""
        lines = ["# generated by bench/fleet.py - a benchmark fleet on loopback, deleted with the fleet",
                 f"{group} = ["]
        for name, data in self.host_vars():
            lines.append(f"    ({name!r}, {{**{data!r}, **{dict(host_data or {})!r}}}),")
        lines.append("]")
        Path(path).write_text("\n".join(lines) + "\n")
        return str(path)

    def write_ssh_config(self, path: str | os.PathLike) -> str:
        """OpenSSH/paramiko client config with one Host block per fleet host."""
        blocks = []
        for name, addr, port in self.hosts:
            blocks.append(
                f"Host {name}\n  HostName {addr}\n  Port {port}\n  User root\n"
                f"  IdentityFile {self.client_key}\n  IdentitiesOnly yes\n"
                f"  UserKnownHostsFile {self.known_hosts}\n  StrictHostKeyChecking yes\n"
            )
        Path(path).write_text("\n".join(blocks))
        return str(path)

    def write_ansible_inventory(self, path: str | os.PathLike) -> str:
        lines = ["[fleet]"]
        for name, addr, port in self.hosts:
            lines.append(f"{name} ansible_host={addr} ansible_port={port}")
        lines += [
            "",
            "[fleet:vars]",
            "ansible_user=root",
            f"ansible_ssh_private_key_file={self.client_key}",
            f"ansible_ssh_common_args='-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes"
            " -o IdentitiesOnly=yes'",
            "ansible_python_interpreter=/usr/bin/python3",
        ]
        Path(path).write_text("\n".join(lines) + "\n")
        return str(path)


if __name__ == "__main__":  # manual smoke: python bench/fleet.py 3 50
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("rtt_ms", type=float)
    a = ap.parse_args()
    with Fleet(a.n, a.rtt_ms) as f:
        for h in f.hosts:
            print(*h)
        print("client key:", f.client_key, "known_hosts:", f.known_hosts)
        print("Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
