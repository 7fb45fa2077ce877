"""The seams between the two front-ends (the playbooks under the pyinfra CLI, ``keystone-checks run``
through pyinfra's API): one classifier of connect failures, one dependency closure, one way a fix that
did not complete is reported, with the failing command's own error text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kc_helpers import REPO, free_port, read_report, run_pyinfra, write_inventory

from keystone_checks import secrets
from keystone_checks.engine import connect_errors
from keystone_checks.engine import fix as fixing
from keystone_checks.engine.catalog import load_catalog
from keystone_checks.engine.plan import checks_for_phase, with_dependencies
from keystone_checks.errors import KeystoneChecksError

MESSAGES = yaml.safe_load((Path(__file__).parent / "fixtures" / "connect_errors" / "messages.yaml").read_text())


@pytest.mark.parametrize("case", MESSAGES, ids=[f"{c['kind']}:{c['source'][:40]}" for c in MESSAGES])
def test_connect_error_classifier_on_real_messages(case):
    failure = connect_errors.classify(case["message"])
    assert failure.kind == case["kind"], (case["source"], failure)
    assert failure.kind in connect_errors.KINDS
    assert failure.reason and failure.reason != "could not connect"
    assert case["message"].strip().splitlines()[-1] in failure.detail


def test_classifier_fixture_covers_openssh_and_paramiko_and_every_kind():
    sources = " ".join(c["source"] for c in MESSAGES)
    assert len(MESSAGES) >= 8 and "OpenSSH" in sources and "paramiko" in sources
    assert {c["kind"] for c in MESSAGES} == set(connect_errors.KINDS) - {"could-not-connect"}


def test_unknown_connect_error_is_not_guessed():
    failure = connect_errors.classify("kex_exchange_identification: something new")
    assert failure.kind == "could-not-connect"


def test_explaining_check_exists_in_the_catalog():
    catalog = load_catalog()
    ids = {c.id for c in catalog}
    for case in MESSAGES:
        check = connect_errors.explaining_check(connect_errors.classify(case["message"]), catalog)
        assert check is None or check in ids


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keystone_checks.frontends.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def test_both_front_ends_name_an_unreachable_host_alike(tmp_path):
    """The same refused host, through the playbook (pyinfra CLI) and through `keystone-checks run`:
    the same kind, the same reason. (@local keeps the pyinfra CLI going: with every host down it
    never loads the playbook.)"""
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed"},
                                                      "down": {"role": "deployed", "ssh_hostname": "127.0.0.1",
                                                               "ssh_port": free_port()}})
    inventory.write_text("import keystone_checks.engine.connect_errors  # noqa: F401\n" + inventory.read_text())
    env = {"KEYSTONE_CHECKS_DIR": str(Path(__file__).parent / "fixtures" / "e2e_checks")}
    cli_report = tmp_path / "cli.json"
    done = run_pyinfra(inventory, "sweep.py", "--data", f"report={cli_report}", env=env)
    assert "Traceback" not in done.stdout + done.stderr
    api_report = tmp_path / "api.json"
    done = _cli("run", "sweep", "-i", str(inventory), "--report", f"json:{api_report}", env=env)
    assert "Traceback" not in done.stderr, done.stderr
    (via_cli,) = [h for h in read_report(cli_report)["hosts"] if h["name"] == "down"]
    (via_api,) = [h for h in json.loads(api_report.read_text())["hosts"] if h["name"] == "down"]
    assert via_cli["status"] == via_api["status"] == "unreachable"
    prefix = "connection-refused: connection refused: nothing listens on the SSH port"
    assert via_cli["error"].startswith(prefix) and via_api["error"].startswith(prefix), (via_cli, via_api)


# -- one dependency closure ---------------------------------------------------------------------------


def test_dependency_closure_is_one_function():
    catalog = load_catalog()
    dependent = next(c for c in catalog if c.depends_on)
    closed = with_dependencies(catalog, [dependent.id], "test")
    ids = [c.id for c in closed]
    assert ids[-1] == dependent.id and set(dependent.depends_on) <= set(ids)
    for check in closed:  # dependencies first
        assert all(ids.index(d) < ids.index(check.id) for d in check.depends_on if d in ids)
    phase = next(iter(dependent.phases))
    assert set(ids) <= {c.id for c in checks_for_phase(catalog, phase)}


def test_dependency_closure_names_who_asked_for_an_unknown_id():
    with pytest.raises(KeystoneChecksError, match=r"fix playbook x: unknown check id\(s\) \['no-such-check'\]"):
        with_dependencies(load_catalog(), ["no-such-check"], "fix playbook x")


# -- a fix that fails keeps its reason ----------------------------------------------------------------


def _failing_fix_catalog(tmp_path: Path) -> tuple[Path, Path]:
    """A check on a file whose fix cannot work: the file's parent is a regular file."""
    checks = tmp_path / "checks"
    checks.mkdir()
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory\n")
    target = blocker / "wanted"
    (checks / "wanted.yaml").write_text(yaml.safe_dump({
        "id": "wanted-file", "title": "wanted file exists", "severity": "critical", "phases": ["sweep"],
        "roles": ["deployed"], "guide": {"document": "troubleshooting-build-and-deploy.md", "section": "Error: Build fails on remote"},
        "why": "a fix whose command fails must say why in the report",
        "gather": {"f": {"fact": "files.PathInfo", "args": {"path": str(target)}}},
        "expect": {"properties": {"f": {"properties": {"exists": {"const": True, "description": "it exists"}}}}},
        "fix": {"risk": "safe", "summary": "create it", "steps": [{"op": "pyinfra:server.shell",
                                                                  "args": {"commands": [f"touch {target}"]}}]},
    }))
    return checks, target


def _assert_reason_kept(result: dict) -> None:
    assert result["outcome"] == "fix-failed", result
    assert "Not a directory" in result["fix"]["error"], result["fix"]
    assert "Not a directory" in result["message"], result["message"]
    assert "No hosts remaining" not in result["message"]


def test_failed_fix_keeps_the_commands_error_under_the_pyinfra_cli(tmp_path):
    checks, _ = _failing_fix_catalog(tmp_path)
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed"}})
    report = tmp_path / "r.json"
    done = run_pyinfra(inventory, "sweep.py", "--data", "fix=true", "--data", f"report={report}",
                       env={"KEYSTONE_CHECKS_DIR": str(checks)})
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    (result,) = read_report(report)["hosts"][0]["results"]
    _assert_reason_kept(result)


def test_failed_fix_keeps_the_commands_error_under_keystone_checks_run(tmp_path):
    checks, _ = _failing_fix_catalog(tmp_path)
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed"}})
    report = tmp_path / "r.json"
    done = _cli("run", "sweep", "-i", str(inventory), "--fix", "--report", f"json:{report}",
                env={"KEYSTONE_CHECKS_DIR": str(checks)})
    assert "Traceback" not in done.stderr, done.stderr
    (result,) = json.loads(report.read_text())["hosts"][0]["results"]
    _assert_reason_kept(result)


class _Meta:
    """The two attributes of pyinfra's OperationMeta that failure_text reads."""

    def __init__(self, success, stderr=(), stdout=()):
        self._success = success
        self._combined_output = type("Output", (), {"stderr_lines": list(stderr), "stdout_lines": list(stdout)})()


def test_failure_text_is_the_first_failed_operations_output_with_secrets_redacted(tmp_path, monkeypatch):
    monkeypatch.setenv("KC_TEST_PASSPHRASE", "hunter2-secret")
    secrets.resolve_passphrase(passphrase_env="KC_TEST_PASSPHRASE")
    metas = [_Meta(True, stderr=["fine"]),
             _Meta(False, stderr=["Key load error: Incorrect key provided for 'rpool/crypt'.",
                                  "echoed: hunter2-secret"]),
             _Meta(None)]
    text = fixing.failure_text(metas)
    assert "Incorrect key provided" in text and "hunter2-secret" not in text and "***" in text
    assert fixing.failure_text([_Meta(False, stdout=["refusing: pool is busy"])]) == "refusing: pool is busy"
    assert fixing.failure_text([_Meta(True), _Meta(None)]) is None


# -- one playbook reader ------------------------------------------------------------------------------


def test_one_playbook_reader_for_run_and_coverage(tmp_path, monkeypatch):
    from keystone_checks.engine.pipeline import playbook_target
    from keystone_checks.frontends.api import resolve_target
    from keystone_checks.paths import playbooks_dir
    from keystone_checks.tools.coverage import fix_playbooks

    ids = {c.id for c in load_catalog()}
    by_coverage = fix_playbooks()
    for path in sorted((playbooks_dir() / "fix").glob("*.py")):
        target = playbook_target(path)
        assert target.force_fix and target.check_ids and set(target.check_ids) <= ids, path
        for check_id in target.check_ids:
            assert f"playbooks/fix/{path.name}" in by_coverage[check_id]
    # the repository-relative form reports print works from any directory
    monkeypatch.chdir(tmp_path)
    name = sorted((playbooks_dir() / "fix").glob("*.py"))[0].name
    assert resolve_target(f"playbooks/fix/{name}").check_ids == playbook_target(playbooks_dir() / "fix" / name).check_ids
    assert resolve_target("sweep.py").phase == "sweep"
    # arguments are read as literals, never run; a non-literal call is not a playbook
    marker = tmp_path / "ran"
    hostile = tmp_path / "hostile.py"
    hostile.write_text(f"run_fix(__import__('os').system('touch {marker}'), ['pool-imported'])\n")
    with pytest.raises(KeystoneChecksError, match="not a keystone-checks playbook"):
        playbook_target(hostile)
    assert not marker.exists()
    wrong = tmp_path / "wrong.py"
    wrong.write_text("run_fix('x', 'pool-imported')\n")  # a string, not a list of ids
    with pytest.raises(KeystoneChecksError, match="not a keystone-checks playbook"):
        playbook_target(wrong)
