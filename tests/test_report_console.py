"""The console table: found values wrapped (never cut), the fix with its commands (dry first) under
every failing check, dependency skips counted (-v lists them), -q failures only, the fleet roll-up
by check, hosts not checked counted; colour only on a terminal, never with --no-color or NO_COLOR."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys

import pytest
from kc_helpers import REPO
from report_fleet import LONG_FOUND, fleet

from keystone_checks.reports import Options, writer

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def report():
    return fleet(24, 31)


def _every(report):
    return [(h["name"], r) for h in report["hosts"] for r in h["results"]]


def _host_block(text: str, host: str) -> str:
    """The lines of one host's section (from its name line to the next blank line)."""
    start = text.index(f"\n{host} [")
    return text[start:text.index("\n\n", start + 1)]


def test_found_values_wrap_to_the_width_and_are_whole(report):
    text = writer("console")(report, Options(width=80))
    hosts = text[:text.index("\nfailing by check")].splitlines()[1:]  # the header and roll-up name hosts
    for line in hosts:
        if not line.lstrip().startswith(("$ ", "file://")):  # commands and links stay whole: copied, opened
            assert len(line) <= 80 or len(line.split()) == 1, line  # or one word too long for a line (a path)
    flat = " ".join(text.split())
    assert " ".join(f"found {LONG_FOUND}".split()) in flat, "the found value is shown whole, not cut"


def test_every_failing_check_shows_its_fix_commands_dry_first_and_the_error_of_a_failed_fix(report):
    text = writer("console")(report, Options(width=100))
    failing = [(h, r) for h, r in _every(report) if r["outcome"] in ("fail", "fix-failed", "would-fix")]
    assert failing and all(r.get("remedy") for _, r in failing), "a check-only run still carries every fix"
    for host, r in failing:
        block = _host_block(text, host)
        remedy = r["remedy"]
        assert f"fix ({remedy['risk']}): " in block
        for command in remedy["dry"]:
            assert f"$ {command}" in block
        if remedy["dry"]:
            dry_at = block.index(remedy["dry"][0])
            assert block.index(f"$ {remedy['apply'][0]}\n", dry_at) > dry_at, "dry run first, then the real run"
            assert f"--limit {host}" in remedy["dry"][0] and remedy["dry"][0].endswith("--fix --dry")
            assert remedy["dry"][1].startswith("pyinfra INVENTORY playbooks/") and " --dry" in remedy["dry"][1]
        if (r.get("fix") or {}).get("error"):
            assert " ".join(f"fix error: {r['fix']['error']}".split()) in " ".join(block.split())


def test_dependency_skips_are_counted_and_verbose_lists_them(report):
    blocked = [(h, r) for h, r in _every(report) if r["outcome"] == "skipped" and r.get("blocked_by")]
    assert blocked
    text = writer("console")(report, Options(width=100))
    assert not re.search(r"^  skipped ", text, re.M), "no skip is listed by default"
    assert f"{len(blocked)} check(s) skipped because a dependency did not pass; --verbose/-v shows them" in text
    verbose = writer("console")(report, Options(width=100, verbose=True))
    for host, r in blocked:
        assert re.search(rf"^  skipped\s+\S+\s+{re.escape(r['check'])}: ", _host_block(verbose, host), re.M), (host, r["check"])
    assert "-v shows them" not in verbose
    assert len(verbose.splitlines()) > len(text.splitlines()) + len(blocked) - 1


def test_quiet_shows_failures_only_with_roll_up_and_totals(report):
    text = writer("console")(report, Options(width=100, quiet=True))
    assert not re.search(r"^  (pass|skipped) ", text, re.M)
    for host, r in _every(report):
        if r["outcome"] in ("fail", "fix-failed", "error"):
            assert r["check"] in _host_block(text, host)
    clean = [h["name"] for h in report["hosts"] if h["status"] == "ok"
             and not any(r["outcome"] in ("fail", "fix-failed", "error") for r in h["results"])]
    for host in clean:
        assert f"\n{host} [" not in text
    assert "failing by check (worst first):" in text and "\ntotals: " in text


def test_roll_up_by_check_and_hosts_not_checked_are_counted(report):
    text = writer("console")(report, Options(width=100))
    statuses = {}
    for h in report["hosts"]:
        statuses[h["status"]] = statuses.get(h["status"], 0) + 1
    assert set(statuses) == {"ok", "unreachable", "error", "timeout"}
    counted = f"24 host(s), {statuses['ok']} checked, {statuses['error']} error, {statuses['timeout']} timeout, " \
              f"{statuses['unreachable']} unreachable"
    assert text.splitlines()[0].startswith(f"keystone-checks sweep: {counted}; status CRITICAL")
    assert f"\ntotals: {counted}; " in text
    rollup = text[text.index("failing by check (worst first):"):]
    hosts_failing = [h for h, r in _every(report) if r["check"] == "zfs-module-loaded" and r["outcome"] == "fail"]
    assert len(hosts_failing) > 5
    line = next(l for l in rollup.splitlines() if " zfs-module-loaded " in l)
    assert f"{len(hosts_failing)} of {statuses['ok']} host(s): {', '.join(hosts_failing[:5])}, ... " \
           f"(+{len(hosts_failing) - 5})" in line
    assert rollup.index(" critical ") < rollup.index(" warning ") < rollup.index(" info "), "worst first"
    down = [h["name"] for h in report["hosts"] if h["status"] != "ok"]
    assert f"hosts not checked: {len(down)}: {', '.join(down[:5])}" in rollup


# -- through the CLI: flags and colour -------------------------------------------------------------


def _merge(args: list[str], shard, tty: bool, env: dict | None = None) -> tuple[int, str]:
    command = [sys.executable, "-m", "keystone_checks.frontends.cli", "merge", str(shard), "--max-age", "1d", *args]
    environment = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    environment.update(env or {}, COLUMNS="100")
    if not tty:
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=environment, timeout=120)
        return done.returncode, done.stdout + done.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen(command, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, cwd=REPO, env=environment)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture(scope="module")
def shard(tmp_path_factory, report):
    path = tmp_path_factory.mktemp("console") / "shard.json"
    path.write_text(json.dumps(report))
    return path


def test_colour_only_on_a_terminal_and_never_with_no_color(shard):
    code, out = _merge([], shard, tty=True)
    assert code == 2 and ANSI.search(out), out[:300]
    for args, env in (([], {"NO_COLOR": "1"}), (["--no-color"], {})):
        code, out = _merge(args, shard, tty=True, env=env)
        assert code == 2 and "\x1b" not in out, (args, env)
        assert "failing by check (worst first):" in out
    code, out = _merge([], shard, tty=False)
    assert code == 2 and "\x1b" not in out and "failing by check (worst first):" in out
    _, coloured = _merge(["-q"], shard, tty=True, env={"NO_COLOR": ""})  # empty NO_COLOR: not set
    assert ANSI.search(coloured)


def test_quiet_and_verbose_flags(shard):
    _, default = _merge([], shard, tty=False)
    _, quiet = _merge(["-q"], shard, tty=False)
    _, verbose = _merge(["-v"], shard, tty=False)
    assert len(quiet.splitlines()) < len(default.splitlines()) < len(verbose.splitlines())
    assert not re.search(r"^  pass ", quiet, re.M) and re.search(r"^  skipped ", verbose, re.M)
    code, out = _merge(["-q", "-v"], shard, tty=False)
    assert code == 3 and "not allowed with" in out, "usage errors are UNKNOWN"
