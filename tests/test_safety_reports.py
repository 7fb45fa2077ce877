"""Reports, exit codes and answers that must not lie.

- reports go to regular files only: a device, a directory, a FIFO or a symlink to one is refused
  (never renamed over), every other format is still written, and the run exits UNKNOWN (3);
- a full disk (RLIMIT_FSIZE: EFBIG, as ENOSPC would) and an unwritable stdout are reported per
  format, no traceback, exit 3;
- usage errors, internal errors and Ctrl-C exit 3 (UNKNOWN), never 1 (WARNING, a green unit) or 2;
- a critical check skipped behind a failing warning check makes the run UNKNOWN and says why;
- merge reports a host from a years-old shard as stale (unreachable), and the fleet's time is
  its oldest shard's;
- non-finite numbers never make invalid JSON.
"""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kc_helpers import REPO, write_inventory
from test_cli import assert_valid_report, cli

from keystone_checks.engine import outcome as report
from keystone_checks.engine.evaluate import CheckResult, Outcome

PASSING = """\
id: root-has-space
title: Root filesystem has some free space
severity: critical
phases: [sweep]
roles: [deployed]
guide: {document: troubleshooting-build-and-deploy.md, section: "Error: \\"out of disk space\\""}
why: Report safety test.
gather:
  root: {fact: system.DiskFree, args: {path: /}}
expect:
  properties: {root: {properties: {avail: {minimum: 1}}}}
"""
WARNING_FAILS = """\
id: warn-fails
title: A warning check that fails (root has no free space)
severity: warning
phases: [sweep]
roles: [deployed]
guide: {document: troubleshooting-build-and-deploy.md, section: "Error: \\"out of disk space\\""}
why: Report safety test.
gather:
  root: {fact: system.DiskFree, args: {path: /}}
expect:
  properties: {root: {properties: {avail: {maximum: 0}}}}
"""
CRITICAL_BEHIND = """\
id: critical-behind
title: A critical check that depends on the failing warning check
severity: critical
phases: [sweep]
roles: [deployed]
guide: {document: troubleshooting-build-and-deploy.md, section: "Error: \\"out of disk space\\""}
why: Report safety test.
depends_on: [warn-fails]
gather:
  root: {fact: system.DiskFree, args: {path: /}}
expect: {}
"""


def checks_dir(path: Path, *texts: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(texts):
        (path / f"c{i}.yaml").write_text(text)
    return path


@pytest.fixture(scope="module")
def shard(tmp_path_factory) -> Path:
    """A real, healthy report: one @local sweep with one passing check (exit 0)."""
    tmp = tmp_path_factory.mktemp("shard")
    inventory = write_inventory(tmp / "inv.py", {"@local": {"role": "deployed"}})
    out = tmp / "shard.json"
    done = cli("run", "sweep", "-i", str(inventory), "--report", f"json:{out}",
               env={"KEYSTONE_CHECKS_DIR": str(checks_dir(tmp / "checks", PASSING)), "XDG_CACHE_HOME": str(tmp / "c")})
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def merge_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return cli("merge", *args, **kwargs)


# -- class 7: where reports go ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["symlink-to-dev-null", "symlink-to-stdout", "fifo", "directory", "char-device"])
def test_report_target_that_is_not_a_regular_file_is_refused_and_others_are_written(tmp_path, shard, kind):
    target = tmp_path / "out.json"
    if kind == "symlink-to-dev-null":
        target.symlink_to("/dev/null")
    elif kind == "symlink-to-stdout":
        target.symlink_to("/proc/self/fd/1")  # what /dev/stdout is (stdout is a pipe here)
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    else:
        if os.geteuid() != 0:
            pytest.skip("mknod of a device needs root")
        os.mknod(target, 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # what /dev/full is
    before = os.lstat(target)
    nagios = tmp_path / "nagios.txt"
    done = merge_cli(str(shard), "--report", f"json:{target}", "--report", f"nagios:{nagios}")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 3, (done.returncode, done.stderr)
    assert "regular files only" in done.stderr and str(target) in done.stderr, done.stderr
    after = os.lstat(target)
    assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode) and after.st_ino == before.st_ino, \
        "the target was replaced"
    assert os.stat("/dev/null").st_mode & stat.S_IFCHR
    assert nagios.read_text().startswith("KEYSTONE OK"), "the other format is still written"


def test_symlink_to_a_regular_file_replaces_the_file_not_the_link(tmp_path, shard):
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    done = merge_cli(str(shard), "--report", f"json:{link}")
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and json.loads(real.read_text())["schema"] == report.SCHEMA_ID


def test_full_disk_is_reported_per_format_and_other_formats_are_written(tmp_path, shard):
    big, small = tmp_path / "fleet.json", tmp_path / "fleet.nagios"
    limit = 400  # the JSON report is larger, the Nagios line smaller: EFBIG for one of them only

    def fsize():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run([sys.executable, "-m", "keystone_checks.frontends.cli", "merge", str(shard),
                           "--report", f"json:{big}", "--report", f"nagios:{small}"],
                          capture_output=True, text=True, cwd=REPO, preexec_fn=fsize, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 3, (done.returncode, done.stderr)
    assert f"report (json): {big}: cannot write the report" in done.stderr, done.stderr
    assert not big.exists() and not list(tmp_path.glob(".fleet.json.*")), "no partial report, no temporary left"
    assert small.read_text().startswith("KEYSTONE OK")


def test_unwritable_stdout_is_a_reported_failure(shard):
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "keystone_checks.frontends.cli", "merge", str(shard), "--report", "json:-"],
                              stdout=full, stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 3 and "report (json): cannot write to stdout" in done.stderr, done.stderr


# -- class 7: exit codes ---------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["run", "sweep"], ["merge"], ["no-such-command"], ["run", "sweep", "-i", "x", "--bogus"]])
def test_usage_errors_exit_unknown(argv):
    done = cli(*argv)
    assert done.returncode == 3, (done.returncode, done.stderr)
    assert "usage:" in done.stderr and "Traceback" not in done.stderr


def test_internal_error_is_one_line_and_unknown(tmp_path, shard):
    """A bug (here: a shard whose hosts are not a list, past a schema that is made to accept it)."""
    code = ("import sys, keystone_checks.tools.merge as m\n"
            "m._report_validator = lambda: type('V', (), {'iter_errors': lambda self, d: iter(())})()\n"
            "from keystone_checks.frontends.cli import main\n"
            "sys.exit(main(['merge', sys.argv[1]]))\n")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**json.loads(shard.read_text()), "hosts": 7}))
    done = subprocess.run([sys.executable, "-c", code, str(broken)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 3, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keystone-checks: internal error: TypeError:"), lines


def _interrupt(args: list[str], wait_for: str | None, after: float, **popen) -> tuple[int, str]:
    # SIGINT back to its default in the child: a test run started in the background by a
    # non-interactive shell inherits SIGINT ignored, and so would the CLI (the Ctrl-C never lands).
    proc = subprocess.Popen([sys.executable, "-m", "keystone_checks.frontends.cli", *args], stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=REPO,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **popen)
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_ctrl_c_while_reading_stdin_prints_interrupted_and_exits_unknown():
    code, err = _interrupt(["diagnose"], None, 3, stdin=subprocess.PIPE)
    assert code == 3 and err.strip() == "keystone-checks: interrupted", (code, err)


def test_ctrl_c_during_a_run_prints_interrupted_and_exits_unknown(tmp_path):
    """The host's "sshd" accepts and never answers: the run is stuck connecting when Ctrl-C comes."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    try:
        inventory = write_inventory(tmp_path / "inv.py", {"stuck": {"role": "deployed", "ssh_hostname": "127.0.0.1",
                                                                     "ssh_port": port}})
        code, err = _interrupt(["run", "sweep", "-i", str(inventory), "--connect-timeout", "60"], None, 6,
                               env={**os.environ, "KEYSTONE_CHECKS_DIR": str(checks_dir(tmp_path / "c", PASSING))})
    finally:
        silent.close()
    assert "Traceback" not in err, err
    assert code == 3 and err.strip().endswith("keystone-checks: interrupted"), (code, err)


# -- class 8: wrong answers ------------------------------------------------------------------------


def test_critical_check_skipped_behind_a_failing_warning_check_is_unknown(tmp_path):
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed"}})
    out = tmp_path / "r.json"
    done = cli("run", "sweep", "-i", str(inventory), "--report", f"json:{out}", "--report", "nagios",
               env={"KEYSTONE_CHECKS_DIR": str(checks_dir(tmp_path / "checks", WARNING_FAILS, CRITICAL_BEHIND)),
                    "XDG_CACHE_HOME": str(tmp_path / "cache")})
    data = json.loads(out.read_text())
    assert_valid_report(data)
    by_id = {r["check"]: r for r in data["hosts"][0]["results"]}
    assert by_id["warn-fails"]["outcome"] == "fail" and by_id["critical-behind"]["outcome"] == "skipped"
    assert by_id["critical-behind"]["blocked_by"] == ["warn-fails"]
    assert done.returncode == 3 and data["summary"]["status"] == "unknown", done.stdout
    assert data["summary"]["unknown_because"] == ["@local: critical check critical-behind could not run: warn-fails did not pass"]
    assert done.stdout.startswith("KEYSTONE UNKNOWN - 0 critical, 1 warning, 1 unknown (@local:warn-fails, "
                                  "@local:critical-behind not run)"), done.stdout


def _aged(shard: Path, out: Path, name: str, when: str) -> Path:
    """The real shard as if its controller had last swept (host renamed ``name``) at ``when``."""
    data = json.loads(shard.read_text())
    data["started_at"] = data["finished_at"] = when
    for host in data["hosts"]:
        host["name"] = name
        host["started_at"] = host["finished_at"] = when
    out.write_text(json.dumps(data))
    return out


def test_merge_reports_a_years_old_shard_stale_and_the_fleet_time_is_the_oldest(tmp_path, shard):
    old = _aged(shard, tmp_path / "old.json", "forgotten", "2023-01-01T00:00:00+00:00")
    out = tmp_path / "fleet.json"
    done = merge_cli(str(shard), str(old), "--report", f"json:{out}")
    merged = json.loads(out.read_text())
    assert_valid_report(merged)
    hosts = {h["name"]: h for h in merged["hosts"]}
    assert hosts["@local"]["status"] == "ok"
    stale = hosts["forgotten"]
    assert stale["status"] == "unreachable" and stale["results"] == []
    assert stale["error"].startswith("stale: last checked 2023-01-01T00:00:00+00:00") and str(old) in stale["error"]
    assert "--max-age 2h" in stale["error"]
    assert done.returncode == 3 and merged["summary"]["status"] == "unknown"
    assert merged["finished_at"] == "2023-01-01T00:00:00+00:00", "the fleet is only as fresh as its oldest shard"
    # a generous --max-age accepts it again, with its own time
    done = merge_cli(str(shard), str(old), "--max-age", "3650d", "--report", f"json:{out}")
    assert done.returncode == 0, done.stderr
    assert {h["name"]: h["status"] for h in json.loads(out.read_text())["hosts"]} == {"@local": "ok", "forgotten": "ok"}
    done = merge_cli(str(shard), "--max-age", "soon")
    assert done.returncode == 3 and "--max-age soon" in done.stderr


def test_merge_judges_each_host_by_its_own_time(tmp_path, shard):
    """A shard finished recently, but one host in it was looked at long ago (per-host finished_at)."""
    data = json.loads(shard.read_text())
    data["hosts"].append({**data["hosts"][0], "name": "slow", "started_at": "2020-05-05T00:00:00+00:00",
                          "finished_at": "2020-05-05T00:00:00+00:00"})
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps(data))
    out = tmp_path / "fleet.json"
    done = merge_cli(str(mixed), "--report", f"json:{out}")
    hosts = {h["name"]: h["status"] for h in json.loads(out.read_text())["hosts"]}
    assert hosts == {"@local": "ok", "slow": "unreachable"} and done.returncode == 3


def test_non_finite_numbers_make_valid_json():
    result = CheckResult(check="c", title="t", severity="warning", outcome=Outcome.PASS, message="ok",
                         evidence={"load": float("nan"), "rate": float("inf"), "list": [float("-inf"), 1.5]},
                         guide={"document": "d", "section": "s"}, duration_ms=float("nan"))
    host = report.HostReport("h", roles=["deployed"], duration_s=float("nan"), results=[result])
    text = report.to_json(report.build("sweep", [host], time.time(), float("nan"), False, False))

    def refuse(token):
        raise AssertionError(f"invalid JSON token {token}")

    data = json.loads(text, parse_constant=refuse)
    assert_valid_report(data)
    (got,) = data["hosts"][0]["results"]
    assert got["evidence"] == {"load": None, "rate": None, "list": [None, 1.5]}
    assert got["duration_ms"] == 0.0 and data["hosts"][0]["duration_s"] == 0.0
    assert all(math.isfinite(data[k]) for k in ("duration_s",))


def test_pyinfra_cli_recorder_refuses_a_fifo_report_and_writes_the_other_formats(tmp_path):
    """The playbooks' path (frontends.playbook.Recorder at exit) uses the same writer: the FIFO given as
    ``--data report=`` stays a FIFO, its failure is named, the extra formats are still written."""
    from kc_helpers import run_pyinfra

    fifo = tmp_path / "report.json"
    os.mkfifo(fifo)
    nagios, junit = tmp_path / "n.txt", tmp_path / "j.xml"
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed"}})
    done = run_pyinfra(inventory, "sweep.py", "--data", f"report={fifo}", "--data", f"reports=nagios:{nagios},junit:{junit}",
                       env={"KEYSTONE_CHECKS_DIR": str(checks_dir(tmp_path / "checks", PASSING)),
                            "XDG_CACHE_HOME": str(tmp_path / "cache")})
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced"
    assert f"report (json): {fifo} is a pipe or socket: reports are written to regular files only" in out, out
    assert nagios.read_text().startswith("KEYSTONE OK") and junit.stat().st_size > 100
