"""Guarantee: a host cannot stall the run, nor break it or the operator's terminal with what it prints.

Real sshd hosts with fake binaries first on the session's PATH, through both front-ends
(`keystone-checks run` and the `pyinfra` CLI with a playbook):

- stuck hosts: a probe in D state (`zpool status` frozen in a cgroup-v1 freezer: it ignores
  SIGKILL), a session that never returns (a `base64` that never ends, ignoring SIGTERM), a port
  that accepts TCP and never speaks SSH. Every other host's results and the report are written
  within a bound; each stuck host says what it was doing.
- hostile bytes: invalid UTF-8, NUL, terminal escape sequences; 5 MB and 100 MB outputs. No
  traceback, later probes intact, too-large output is an error (never parsed), controller memory
  bounded, JUnit is valid XML, no raw ESC in the console, HTML, Nagios or Prometheus output.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from kc_helpers import REPO, Sshd, frozen_cgroup, outcomes, write_inventory  # noqa: F401 - fixture
from report_checks import nagios_long_output

HOSTILE_CHECKS = Path(__file__).parent / "fixtures" / "safety" / "hostile_checks"
POOL_LIST = r"printf 'rpool\t21474836480\t3000000000\t18000000000\tONLINE\t-\n'"
# zpool status of a healthy pool (format: OpenZFS 2.2 `zpool status -v`)
HEALTHY = (r"printf '  pool: rpool\n state: ONLINE\nconfig:\n\n\tNAME        STATE     READ WRITE CKSUM\n"
           r"\trpool       ONLINE       0     0     0\n\t  vda2      ONLINE       0     0     0\n\n"
           r"errors: No known data errors\n'")
# the same with a vdev path holding invalid UTF-8 and a state carrying terminal escapes and NUL
HOSTILE_BYTES = (r"printf '  pool: rpool\n state: ONLINE\033]0;pwned\007\033[2J\000\nconfig:\n\n"
                 r"\tNAME        STATE     READ WRITE CKSUM\n\trpool       ONLINE       0     0     0\n"
                 r"\t  /dev/disk/by-id/\377\376\033[31m ONLINE       0     0     0\n\nerrors: No known data errors\n'")
# a failing command whose error output (quoted raw into the check's message) carries escapes
HOSTILE_ERROR = r"printf 'cannot list: \033]0;pwned\007\033[2J\377\n' >&2; exit 2"


def fake_zpool(bin_dir: Path, status: str, pool_list: str = POOL_LIST) -> None:
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "zpool"
    script.write_text(f'#!/bin/sh\ncase "$1" in\nlist) {pool_list} ;;\nstatus) {status} ;;\nesac\n')
    script.chmod(0o755)


def sshd_host(tmp_path: Path, name: str, request, status: str = HEALTHY, extra=None, pool_list: str = POOL_LIST) -> Sshd:
    bin_dir = tmp_path / f"{name}-bin"
    fake_zpool(bin_dir, status, pool_list)
    for file_name, text in (extra or {}).items():
        (bin_dir / file_name).write_text(text)
        (bin_dir / file_name).chmod(0o755)
    server = Sshd(tmp_path / name, path=[bin_dir])
    server.root.mkdir()
    server.start()
    request.addfinalizer(server.stop)
    return server


def run_front_end(front_end: str, inventory: Path, tmp_path: Path, reports: dict[str, Path], timeout: int = 180):
    """Run the sweep through `keystone-checks run` or the `pyinfra` CLI; returns (report, console
    text, seconds, the process's own peak RSS in KiB)."""
    report_path = tmp_path / f"{front_end}-report.json"
    if front_end == "run":
        command = [sys.executable, "-m", "keystone_checks.frontends.cli", "run", "sweep", "-i", str(inventory),
                   "--connect-timeout", "3", "--report", f"json:{report_path}"]
        command += [arg for fmt, path in reports.items() for arg in ("--report", f"{fmt}:{path}")]
    else:
        script = Path(sys.executable).parent / "pyinfra"
        launcher = [str(script)] if script.exists() else [sys.executable, "-m", "pyinfra"]
        command = [*launcher, "-y", str(inventory), str(REPO / "playbooks" / "sweep.py"),
                   "--data", f"report={report_path}",
                   "--data", "reports=" + ",".join(f"{fmt}:{path}" for fmt, path in reports.items())]
    env = {**os.environ, "KEYSTONE_CHECKS_DIR": str(HOSTILE_CHECKS), "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=REPO, env=env)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # this process's own rusage: its peak RSS
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        elapsed = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        console = out.read().decode("utf-8", "replace") + err.read().decode("utf-8", "replace")
    assert elapsed < timeout, f"{front_end} was killed after {timeout}s: {console[-3000:]}"
    assert report_path.exists(), f"no report: {console[-3000:]}"
    return json.loads(report_path.read_text()), console, elapsed, usage.ru_maxrss


def cli_inventory(path: Path, hosts: dict) -> Path:
    inventory = write_inventory(path, hosts)
    inventory.write_text("import keystone_checks.engine.connect_errors  # noqa: F401\n" + inventory.read_text())
    return inventory


@pytest.fixture
def hung_pids(tmp_path):
    """PIDs of the fake `base64` processes that never end; killed (by pid) after the test."""
    pid_file = tmp_path / "hung.pids"
    yield pid_file
    for pid in pid_file.read_text().split() if pid_file.exists() else []:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.sshd
@pytest.mark.parametrize("front_end", ["run", "pyinfra"])
def test_stuck_hosts_do_not_stall_the_run(front_end, tmp_path, request, frozen_cgroup, hung_pids):  # noqa: F811
    healthy = sshd_host(tmp_path, "healthy", request)
    # `zpool status` joins the frozen group: D state, SIGKILL pending until the test thaws it
    dstate = sshd_host(tmp_path, "dstate", request, status=f"echo $$ >{frozen_cgroup / 'tasks'}; echo never")
    # the session never returns: the batch's final `base64` never ends and ignores SIGTERM
    hung = sshd_host(tmp_path, "hung", request, extra={
        "base64": f"#!/bin/sh\necho $$ >>{hung_pids}\ntrap '' TERM HUP INT\nwhile :; do sleep 1; done\n"})
    silent = socket.socket()  # accepts TCP, never sends an SSH banner
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    request.addfinalizer(silent.close)

    def data(server, **extra):
        return {**server.host_data(), "role": "deployed", **extra}

    hosts = {
        "healthy": data(healthy),
        "dstate": data(dstate),
        "hung": data(hung, host_timeout=6),
        "silent": {"ssh_hostname": "127.0.0.1", "ssh_port": silent.getsockname()[1], "ssh_user": "root",
                   "role": "deployed", "ssh_paramiko_connect_kwargs": {"timeout": 3}},
    }
    inventory = cli_inventory(tmp_path / "inv.py", hosts)
    report, console, elapsed, _ = run_front_end(front_end, inventory, tmp_path, {}, timeout=150)
    assert "Traceback" not in console, console[-4000:]
    # bound: the D-state probe's own timeout (20 s) + kill grace, not the sum of the stuck hosts
    assert elapsed < 60, f"{elapsed:.1f}s"
    by_name = {h["name"]: h for h in report["hosts"]}
    assert set(by_name) == set(hosts)

    assert by_name["healthy"]["status"] == "ok"
    assert outcomes(report, "healthy") == {"pool-state": "pass", "pools-listed": "pass", "root-has-space": "pass"}

    assert by_name["dstate"]["status"] == "ok", "one unkillable probe costs its own check, not the host"
    got = outcomes(report, "dstate")
    assert got == {"pool-state": "error", "pools-listed": "pass", "root-has-space": "pass"}, got
    message = {r["check"]: r["message"] for r in by_name["dstate"]["results"]}["pool-state"]
    assert "timed out after 20s" in message and "did not end within 2s of being killed" in message, message

    assert by_name["hung"]["status"] == "timeout", by_name["hung"]
    assert "no answer within 6s while gathering facts" in by_name["hung"]["error"]

    assert by_name["silent"]["status"] == "unreachable"
    assert by_name["silent"]["error"].startswith("timed-out: connection timed out: no SSH banner"), by_name["silent"]
    assert report["summary"]["exit_code"] == 3
    for server in (healthy, dstate, hung):
        assert len(server.execs()) == 1, "still one exec per host"


@pytest.mark.sshd
@pytest.mark.parametrize("front_end", ["run", "pyinfra"])
def test_hostile_bytes_and_huge_outputs(front_end, tmp_path, request):
    hosts = {
        "bytes": sshd_host(tmp_path, "bytes", request, status=HOSTILE_BYTES, pool_list=HOSTILE_ERROR),
        "five-mb": sshd_host(tmp_path, "five-mb", request, status="yes '  pool: rpool' | head -c 5000000"),
        "hundred-mb": sshd_host(tmp_path, "hundred-mb", request, status="head -c 100000000 /dev/zero"),
    }
    # the same front end over one well-behaved host: the memory baseline
    baseline_inv = cli_inventory(tmp_path / "base.py", {"bytes": {**hosts["bytes"].host_data(), "role": "deployed"}})
    (tmp_path / "base").mkdir()
    _, _, _, baseline_kib = run_front_end(front_end, baseline_inv, tmp_path / "base", {})

    inventory = cli_inventory(tmp_path / "inv.py", {n: {**s.host_data(), "role": "deployed"} for n, s in hosts.items()})
    extra = {"junit": tmp_path / "r.xml", "html": tmp_path / "r.html", "nagios": tmp_path / "r.nagios",
             "prometheus": tmp_path / "r.prom", "console": tmp_path / "r.txt"}
    report, console, _, peak_kib = run_front_end(front_end, inventory, tmp_path, extra)
    assert "Traceback" not in console and "UnicodeDecodeError" not in console, console[-4000:]
    assert "\x1b" not in console, "no raw escape sequence from a host reaches the terminal"

    got = {name: outcomes(report, name) for name in hosts}
    for name in hosts:
        assert got[name]["root-has-space"] == "pass", "the probes next to a hostile one are intact"
    assert got["five-mb"]["pools-listed"] == got["hundred-mb"]["pools-listed"] == "pass"
    results = {h["name"]: {r["check"]: r for r in h["results"]} for h in report["hosts"]}
    bad_state = results["bytes"]["pool-state"]
    assert bad_state["outcome"] == "fail", bad_state
    # JSON keeps the value exactly (json escapes control characters itself); undecodable bytes are U+FFFD
    assert bad_state["evidence"]["status"]["state"] == "ONLINE\x1b]0;pwned\x07\x1b[2J\x00"
    assert "/dev/disk/by-id/\ufffd\ufffd\x1b[31m" in [v["name"] for v in bad_state["evidence"]["status"]["vdevs"]]
    listed = results["bytes"]["pools-listed"]
    assert listed["outcome"] == "error" and "cannot list: \x1b]0;pwned\x07\x1b[2J\ufffd" in listed["message"], listed
    table = extra["console"].read_text()
    # the table wraps long messages: compare words
    assert "cannot list: \\x1b]0;pwned\\x07\\x1b[2J\ufffd" in " ".join(table.split()), "the console table shows the escapes visibly"
    if front_end == "pyinfra":
        # the same table at the end; only the header differs (pyinfra's exit code is not the report's)
        assert table.strip().split("\n", 1)[1] in console, "the playbook prints the same table at the end"
    for name in ("five-mb", "hundred-mb"):
        result = results[name]["pool-state"]
        assert result["outcome"] == "error", result
        assert "output larger than 1048576 bytes (not parsed)" in result["message"]

    growth_mib = (peak_kib - baseline_kib) / 1024
    print(f"{front_end}: peak RSS {peak_kib / 1024:.0f} MiB, baseline {baseline_kib / 1024:.0f} MiB")  # shown with -s
    assert growth_mib < 60, f"controller peak RSS grew {growth_mib:.0f} MiB over the baseline for a 100 MB emitter"

    ET.parse(extra["junit"])  # a strict XML 1.0 parser: raises on NUL/ESC
    for fmt, path in extra.items():
        text = path.read_bytes()
        assert b"\x1b" not in text and b"\x00" not in text, f"{fmt} holds raw control characters"
    assert "\\x1b]0;pwned" in extra["html"].read_text() and "\\x1b]0;pwned" in extra["junit"].read_text()
    nagios = extra["nagios"].read_text()
    assert nagios.count("\n") == 1 + nagios_long_output(report), "host text breaks no line of the plugin output"


E2E_CHECKS = Path(__file__).parent / "fixtures" / "e2e_checks"


@pytest.mark.sshd
@pytest.mark.parametrize("front_end", ["run", "pyinfra"])
def test_a_fix_that_never_returns_fails_that_fix_only(front_end, tmp_path, request, hung_pids):
    """pyinfra runs an operation on every host before the next one: a fix command that never
    returns on one host held every later fix of every host. With fix_timeout it fails that fix."""
    ok = sshd_host(tmp_path, "ok", request)
    stuck = sshd_host(tmp_path, "stuck", request, extra={  # the fix's `touch` never returns
        "touch": f"#!/bin/sh\necho $$ >>{hung_pids}\ntrap '' TERM HUP INT\nwhile :; do sleep 1; done\n"})
    markers = {"ok": tmp_path / "marker-ok", "stuck": tmp_path / "marker-stuck"}
    hosts = {name: {**server.host_data(), "role": "deployed", "installer_marker": str(markers[name]), "fix_timeout": 4}
             for name, server in (("ok", ok), ("stuck", stuck))}
    inventory = cli_inventory(tmp_path / "inv.py", hosts)
    report_path = tmp_path / "fix.json"
    if front_end == "run":
        command = [sys.executable, "-m", "keystone_checks.frontends.cli", "run", "sweep", "-i", str(inventory), "--fix",
                   "--report", f"json:{report_path}"]
    else:
        script = Path(sys.executable).parent / "pyinfra"
        launcher = [str(script)] if script.exists() else [sys.executable, "-m", "pyinfra"]
        command = [*launcher, "-y", str(inventory), str(REPO / "playbooks" / "sweep.py"),
                   "--data", "fix=true", "--data", f"report={report_path}"]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO, stdin=subprocess.DEVNULL,
                          env={**os.environ, "KEYSTONE_CHECKS_DIR": str(E2E_CHECKS), "PYTHONPATH": str(REPO)})
    elapsed = time.monotonic() - started
    assert "Traceback" not in done.stdout + done.stderr, (done.stdout + done.stderr)[-3000:]
    assert elapsed < 60, f"{elapsed:.1f}s"
    report = json.loads(report_path.read_text())
    assert outcomes(report, "ok")["marker-file-present"] == "fixed"
    assert outcomes(report, "stuck")["marker-file-present"] == "fix-failed"
    assert markers["ok"].exists() and not markers["stuck"].exists()
