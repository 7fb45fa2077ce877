"""The `keystone-checks` command: list/show/validate/docs/coverage, and `run` through pyinfra's API
against @local and real sshd hosts, including hosts that cannot be reached (each with its reason)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from kc_helpers import REPO, Sshd, free_port, outcomes, write_inventory

E2E_CHECKS = Path(__file__).parent / "fixtures" / "e2e_checks"
SCHEMA = json.loads((REPO / "keystone_checks" / "schema" / "report.schema.json").read_text())


def cli(*args: str, env: dict | None = None, stdin: str | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keystone_checks.frontends.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, **(env or {})},
                          input=stdin if stdin is not None else None,
                          stdin=None if stdin is not None else subprocess.DEVNULL)


def assert_valid_report(report: dict) -> None:
    Draft202012Validator.check_schema(SCHEMA)
    errors = list(Draft202012Validator(SCHEMA, format_checker=FormatChecker()).iter_errors(report))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


# -- catalog commands ----------------------------------------------------------------------------


def test_list_show_validate():
    listed = cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    checks = json.loads(listed.stdout)
    ids = {c["id"] for c in checks}
    assert "credstore-closed-before-export" in ids
    by_phase = json.loads(cli("list", "--phase", "zfs", "--json").stdout)
    assert by_phase and all("zfs" in c["phases"] for c in by_phase)
    assert len(by_phase) < len(checks)
    shown = cli("show", "credstore-closed-before-export")
    assert shown.returncode == 0 and "close-credstore-export.py" in shown.stdout
    missing = cli("show", "credstore")
    assert missing.returncode == 3 and "did you mean" in missing.stderr and "Traceback" not in missing.stderr
    assert cli("validate").returncode == 0


def test_docs_checks_md_is_up_to_date():
    done = cli("docs", "--check")
    assert done.returncode == 0, done.stdout + done.stderr + "\nrun `keystone-checks docs` and commit docs/checks.md"


def test_docs_check_detects_stale_file(tmp_path):
    stale = tmp_path / "checks.md"
    stale.write_text("# Check catalog\n")
    assert cli("docs", "--check", "--output", str(stale)).returncode == 1
    assert cli("docs", "--output", str(stale)).returncode == 0
    text = stale.read_text()
    assert "## Phase: zfs" in text and "#### `credstore-closed-before-export`" in text
    assert cli("docs", "--check", "--output", str(stale)).returncode == 0


def test_coverage_is_wired():
    done = cli("coverage")
    assert "Traceback" not in done.stderr
    assert done.returncode == 0 and "covered" in done.stdout, done.stdout[-2000:] + done.stderr


# -- run through the API -------------------------------------------------------------------------


def test_run_local_exit_code_and_every_report_format(tmp_path):
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed", "installer_marker": str(tmp_path / "m")}})
    paths = {f: tmp_path / f"r.{f}" for f in ("json", "junit", "prometheus", "html")}
    done = cli("run", "sweep", "-i", str(inventory), *[a for f, p in paths.items() for a in ("--report", f"{f}:{p}")],
               "--report", "nagios", env={"KEYSTONE_CHECKS_DIR": str(E2E_CHECKS)})
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, (done.stdout, done.stderr)  # a critical check fails: Nagios CRITICAL
    assert done.stdout.startswith("KEYSTONE CRITICAL - "), done.stdout
    report = json.loads(paths["json"].read_text())
    assert_valid_report(report)
    got = outcomes(report, "@local")
    assert got["root-has-space"] == "pass" and got["root-is-tiny"] == "fail" and got["after-tiny"] == "skipped"
    assert got["credstore-needs-cryptsetup"] in ("error", "fail", "pass")
    assert report["summary"]["exit_code"] == 2
    assert "[1/1] @local" in done.stderr, "plain progress lines when stderr is not a terminal"
    for fmt in ("junit", "prometheus", "html"):
        assert paths[fmt].stat().st_size > 200


def test_run_bad_target_and_inventory_exit_unknown(tmp_path):
    env = {"KEYSTONE_CHECKS_DIR": str(E2E_CHECKS)}
    done = cli("run", "no-such-phase", "-i", "@local", env=env)
    assert done.returncode == 3 and "neither a phase" in done.stderr and "Traceback" not in done.stderr
    done = cli("run", "sweep", "-i", str(tmp_path / "missing.py"), env=env)
    assert done.returncode == 3 and "not found" in done.stderr
    done = cli("run", "sweep", "-i", "@local", "--report", "yaml:/tmp/x", env=env)
    assert done.returncode == 3 and "unknown report format" in done.stderr


@pytest.mark.sshd
def test_run_sshd_hosts_fix_and_unreachable_reasons(tmp_path, request):
    good = Sshd(tmp_path / "good")
    good.root.mkdir()
    good.start()
    request.addfinalizer(good.stop)
    marker = tmp_path / "marker"
    base = {"role": "deployed", "installer_marker": str(marker)}
    # A host whose known host key is another key: what an installer ISO's fresh keys look like.
    other_key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    changed_known = tmp_path / "changed_known_hosts"
    pub = (other_key.with_suffix(".pub")).read_text().split()
    changed_known.write_text(f"[127.0.0.1]:{good.port} {pub[0]} {pub[1]}\n")
    hosts = {
        "good": {**good.host_data(), **base},
        "refused": {**good.host_data(), **base, "ssh_port": free_port()},
        "noname": {**good.host_data(), **base, "ssh_hostname": "kc-no-such-host.invalid"},
        "badkey": {**good.host_data(), **base, "ssh_key": str(other_key)},
        "hostkey": {**good.host_data(), **base, "ssh_known_hosts_file": str(changed_known)},
    }
    inventory = write_inventory(tmp_path / "inv.py", hosts)
    env = {"KEYSTONE_CHECKS_DIR": str(E2E_CHECKS)}
    out = tmp_path / "sweep.json"
    done = cli("run", "sweep", "-i", str(inventory), "--connect-timeout", "5", "--report", f"json:{out}", env=env)
    assert "Traceback" not in done.stderr, done.stderr
    report = json.loads(out.read_text())
    assert_valid_report(report)
    hosts_by_name = {h["name"]: h for h in report["hosts"]}
    assert hosts_by_name["good"]["status"] == "ok"
    assert outcomes(report, "good")["root-is-tiny"] == "fail"
    expected_reasons = {"refused": "connection refused", "noname": "name does not resolve",
                        "badkey": "authentication rejected", "hostkey": "host key changed"}
    for name, reason in expected_reasons.items():
        host = hosts_by_name[name]
        assert host["status"] == "unreachable", host
        assert reason in host["error"].lower(), (name, host["error"])
    assert "installer ISO" in hosts_by_name["hostkey"]["error"] and "attack" in hosts_by_name["hostkey"]["error"]
    assert done.returncode == 2  # critical failure on 'good' outranks unknown
    assert len(good.execs()) == 1, f"one exec channel for the reachable host, got {good.execs()}"

    # --fix --dry lists the fix commands and changes nothing; --fix runs them and re-checks.
    dry = tmp_path / "dry.json"
    done = cli("run", "sweep", "-i", str(inventory), "--limit", "good", "--fix", "--dry", "--report", f"json:{dry}", env=env)
    report = json.loads(dry.read_text())
    assert [h["name"] for h in report["hosts"]] == ["good"], "--limit runs only the named host"
    result = {r["check"]: r for r in report["hosts"][0]["results"]}["marker-file-present"]
    assert result["outcome"] == "would-fix" and any("touch" in c for c in result["fix"]["commands"])
    assert report["dry_run"] is True and not marker.exists()
    fixed = tmp_path / "fixed.json"
    done = cli("run", "sweep", "-i", str(inventory), "--limit", "good", "--fix", "--report", f"json:{fixed}", env=env)
    report = json.loads(fixed.read_text())
    assert_valid_report(report)
    assert outcomes(report, "good")["marker-file-present"] == "fixed", done.stdout + done.stderr
    assert marker.exists()


def test_run_all_hosts_unreachable_is_unknown(tmp_path):
    inventory = write_inventory(tmp_path / "inv.py", {"down": {"role": "deployed", "ssh_hostname": "127.0.0.1",
                                                               "ssh_port": free_port()}})
    out = tmp_path / "r.json"
    done = cli("run", "sweep", "-i", str(inventory), "--report", f"json:{out}", "--report", "nagios",
               env={"KEYSTONE_CHECKS_DIR": str(E2E_CHECKS)})
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stdout.startswith("KEYSTONE UNKNOWN - ")
    report = json.loads(out.read_text())
    assert_valid_report(report)
    assert report["hosts"][0]["status"] == "unreachable" and "connection refused" in report["hosts"][0]["error"]


def test_unreachable_hosts_name_the_explaining_catalog_check(tmp_path):
    from keystone_checks.engine.catalog import load_catalog

    catalog = load_catalog()
    explains = {reason: {c.id for c in catalog for s in c.symptoms
                         if needle in (s["regex"] if isinstance(s, dict) else s)}
                for reason, needle in (("refused", "Connection refused"), ("noname", "resolve hostname"))}
    inventory = write_inventory(tmp_path / "inv.py", {
        "refused": {"role": "deployed", "ssh_hostname": "127.0.0.1", "ssh_port": free_port()},
        "noname": {"role": "deployed", "ssh_hostname": "kc-no-such-host.invalid"},
    })
    out = tmp_path / "r.json"
    done = cli("run", "sweep", "-i", str(inventory), "--report", f"json:{out}")
    assert done.returncode == 3, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert_valid_report(report)
    for host in report["hosts"]:
        assert host["status"] == "unreachable"
        if explains[host["name"]]:  # the catalog has a check for this failure: it is named
            assert host["explained_by"] in explains[host["name"]], host
            assert f"keystone-checks show {host['explained_by']}" in host["error"]


def test_run_progress_redraws_on_a_terminal(tmp_path):
    import pty

    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed", "installer_marker": str(tmp_path / "m")}})
    leader, follower = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "keystone_checks.frontends.cli", "run", "sweep", "-i", str(inventory),
                               "--report", f"json:{tmp_path / 'r.json'}"], stdout=subprocess.PIPE, stderr=follower,
                              stdin=subprocess.DEVNULL, timeout=120, cwd=REPO,
                              env={**os.environ, "KEYSTONE_CHECKS_DIR": str(E2E_CHECKS)})
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    terminal = b"".join(chunks).decode()
    assert done.returncode == 2
    assert "\r\x1b[K[1/1 hosts] " in terminal and "failing/error check(s)" in terminal, terminal
    assert "[1/1] @local:" not in terminal, "plain lines are for logs, not terminals"
