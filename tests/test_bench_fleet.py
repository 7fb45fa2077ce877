"""Fast, untimed test of the benchmark's fleet helper (bench/fleet.py).

Starts 2 real sshd hosts behind the delay proxy at 20 ms RTT, runs one exec per host with paramiko,
checks the proxied path really costs >= 20 ms per round trip, that both hosts answered with their
own hostname, and that every process the fleet started is gone after the context exits.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest

paramiko = pytest.importorskip("paramiko")

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.skipif(not os.path.exists("/usr/sbin/sshd"), reason="openssh-server missing (bench/setup.sh)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the fleet needs root"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) missing"),
]


def _cmdlines_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def test_two_host_fleet_with_20ms_rtt():
    from fleet import Fleet, descendants

    rtt_ms = 20.0
    with Fleet(2, rtt_ms) as fleet:
        fleet_dir = str(fleet.dir)
        pids = list(fleet.pids)
        assert len(fleet.hosts) == 2
        assert len({(a, p) for _, a, p in fleet.hosts}) == 2
        answers, round_trips, children = {}, [], []
        key = paramiko.Ed25519Key.from_private_key_file(fleet.client_key)
        for name, addr, port in fleet.hosts:
            sock = socket.create_connection((addr, port), timeout=10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = paramiko.SSHClient()
            client.load_host_keys(fleet.known_hosts)
            client.set_missing_host_key_policy(paramiko.RejectPolicy())  # the host's own key must match
            client.connect(addr, port, username="root", pkey=key, sock=sock, look_for_keys=False,
                           allow_agent=False, timeout=10)
            transport = client.get_transport()
            t0 = time.perf_counter()
            chan = transport.open_session()  # channel-open -> confirmation: exactly one round trip
            round_trips.append(time.perf_counter() - t0)
            chan.exec_command("hostname")
            out = chan.makefile("rb").read().decode().strip()
            assert chan.recv_exit_status() == 0
            answers[name] = out
            children += [d for p in pids for d in descendants(p)]  # per-connection sshd children exist now
            client.close()

        assert answers == {name: name for name, _, _ in fleet.hosts}  # both hosts answered, as themselves
        assert min(round_trips) >= rtt_ms / 1000.0, round_trips
        assert children, "expected per-connection sshd processes while connected"

    # Exit is asynchronous (and slow on a loaded machine): allow a few seconds; a zombie is dead.
    deadline = time.monotonic() + 5
    while True:
        alive = [p for p in pids + children if _running(p)]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not alive, f"fleet processes still running: {alive}"
    assert not _cmdlines_mentioning(fleet_dir), "a process still refers to the fleet directory"
    assert not os.path.exists(fleet_dir)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_delay_proxy_is_a_delay_line_not_a_per_chunk_sleep(tmp_path):
    """Two concurrent 8 MiB echo streams through the proxy at 100 ms RTT: bytes intact and in order,
    half-close forwarded, and the transfer costs about one RTT, not one delay per chunk (a
    sleep-then-forward proxy needs >= 128 chunks x 50 ms = 6.4 s for this; the bound below is loose)."""
    import json
    import subprocess
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    echo_port = srv.getsockname()[1]

    def echo(conn):
        with conn:
            while True:
                data = conn.recv(1 << 16)
                if not data:
                    break
                conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)

    def accept_loop():
        for _ in range(2):
            c, _ = srv.accept()
            threading.Thread(target=echo, args=(c,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    cfg = tmp_path / "proxy.json"
    cfg.write_text(json.dumps({"one_way_ms": 50, "routes": [["127.0.0.1", 0, "127.0.0.1", echo_port]]}))
    proxy = subprocess.Popen([sys.executable, str(BENCH / "delayproxy.py"), str(cfg)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        line = proxy.stdout.readline()
        assert line.startswith("READY "), line
        port = json.loads(line[6:])[0][1]
        size = 8 << 20
        results = {}

        def client(i):
            payload = bytes((i * 7 + k) % 251 for k in range(65536)) * (size // 65536)
            s = socket.create_connection(("127.0.0.1", port))
            got = bytearray()

            def reader():
                while True:
                    d = s.recv(1 << 16)
                    if not d:
                        break
                    got.extend(d)

            t = threading.Thread(target=reader)
            t.start()
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            t.join(30)
            s.close()
            results[i] = bytes(got) == payload

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        elapsed = time.perf_counter() - t0
        assert results == {0: True, 1: True}
        assert elapsed >= 0.1  # at least one round trip (plus the emulated TCP handshake)
        assert elapsed < 4.0, f"{elapsed:.2f} s: looks like a per-chunk sleep"
    finally:
        proxy.stdin.close()  # EOF on stdin = shut down
        proxy.wait(10)
        srv.close()


def test_batch_ssh_reference_runs_the_engine_batch_on_every_host_of_a_niced_fleet(tmp_path):
    """bench/tools/batch_ssh.py, the ideal the sweeps are measured against: every host answers the
    engine's own batch to its END marker; a host that does not is counted as an error. The
    simulated hosts run at nice 10 (their probe work must not starve the controller under test)."""
    import json
    import subprocess

    from fleet import HOST_NICE, Fleet

    from keystone_checks.facts.batch import Probe, new_marker, render_batch, split_batch

    marker = new_marker()
    script = tmp_path / "batch.sh"
    script.write_text(render_batch([Probe("nice", "cut -d' ' -f19 /proc/self/stat"), Probe("name", "hostname")], marker))
    with Fleet(2, 0) as fleet:
        hosts = tmp_path / "hosts.json"
        hosts.write_text(json.dumps({"hosts": fleet.hosts}))
        config = fleet.write_ssh_config(tmp_path / "ssh_config")
        done = subprocess.run([sys.executable, str(BENCH / "tools" / "batch_ssh.py"), str(hosts), config, str(script)],
                              capture_output=True, text=True, timeout=120)
        assert json.loads(done.stdout.strip().splitlines()[-1]) == {"ok": 2, "errors": 0, "execs_ok": 2}, done.stderr
        # one host's own answer through the same client options: niced, and itself
        name, _, _ = fleet.hosts[0]
        out = subprocess.run(["ssh", "-F", config, "-o", "BatchMode=yes", "-o", "KexAlgorithms=curve25519-sha256",
                              name, "sh -c " + __import__("shlex").quote(script.read_text())],
                             capture_output=True, text=True, timeout=60).stdout
        nice, host = split_batch(out.split("\n"), marker, 2)
        assert nice.stdout == [str(HOST_NICE)] and host.stdout == [name]
        # a host that never answers is an error, not a pass
        dead = tmp_path / "dead.json"
        dead.write_text(json.dumps({"hosts": [[name, "127.0.0.1", 1]]}))
        (tmp_path / "dead_config").write_text(f"Host {name}\n  HostName 127.0.0.1\n  Port 1\n")
        done = subprocess.run([sys.executable, str(BENCH / "tools" / "batch_ssh.py"), str(dead),
                               str(tmp_path / "dead_config"), str(script)], capture_output=True, text=True, timeout=120)
        assert json.loads(done.stdout.strip().splitlines()[-1])["errors"] == 1
