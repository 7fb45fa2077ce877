"""One fix run repairs a chain of dependent checks (keystone_checks/engine/fix.py), under the real
pyinfra CLI on @local: the dry run changes nothing and names the checks waiting behind the first
fix; the real run fixes the first layer, then evaluates and fixes what it was blocking, in order.

The catalog is four small checks over files in tmp_path (the same shape as the deployed chain
pool-imported -> credstore-unlocked -> ... -> crypt-datasets-mounted -> nix checks)."""

from __future__ import annotations

import yaml
from kc_helpers import read_report, run_pyinfra, write_inventory


def _check(tmp_path, check_id, path, depends_on=(), fix=None):
    data = {
        "id": check_id, "title": f"{check_id} file exists", "severity": "critical", "phases": ["sweep"],
        "roles": ["deployed"], "guide": {"document": "troubleshooting-build-and-deploy.md", "section": "Slow deployment"},
        "why": "test chain", "depends_on": list(depends_on),
        "gather": {"f": {"fact": "files.PathInfo", "args": {"path": str(path)}}},
        "expect": {"properties": {"f": {"properties": {"exists": {"const": True, "description": f"{path} exists"}}}}},
    }
    if fix:
        data["fix"] = fix
    (tmp_path / "checks" / f"{check_id}.yaml").write_text(yaml.safe_dump(data))


def _touch(path):
    return {"risk": "safe", "summary": f"create {path}", "steps": [{"op": "pyinfra:files.file", "args": {"path": str(path)}}]}


def test_one_fix_run_repairs_the_whole_chain(tmp_path):
    (tmp_path / "checks").mkdir()
    a, b, never = tmp_path / "a", tmp_path / "b", tmp_path / "never"
    _check(tmp_path, "chain-a", a, fix=_touch(a))
    _check(tmp_path, "chain-b", b, depends_on=["chain-a"], fix=_touch(b))
    _check(tmp_path, "chain-c", a, depends_on=["chain-b"])
    _check(tmp_path, "chain-d", never, depends_on=["chain-a"], fix={"manual": "make it by hand"})
    # Unblocked by chain-a too, but disruptive: never run unless it was in the plan the operator saw.
    _check(tmp_path, "chain-e", tmp_path / "e", depends_on=["chain-a"],
           fix={**_touch(tmp_path / "e"), "risk": "disruptive"})
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed"}})
    env = {"KEYSTONE_CHECKS_DIR": str(tmp_path / "checks")}

    def run(tag, *args):
        done = run_pyinfra(inventory, "sweep.py", "--data", f"report={tmp_path / tag}.json", *args, env=env)
        assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
        return {r["check"]: r for r in read_report(tmp_path / f"{tag}.json")["hosts"][0]["results"]}

    dry = run("dry", "--dry", "--data", "fix=true")
    assert dry["chain-a"]["outcome"] == "would-fix"
    assert dry["chain-a"]["fix"]["then"] == ["chain-b", "chain-d", "chain-e", "chain-c"]
    assert {dry[c]["outcome"] for c in ("chain-b", "chain-c", "chain-d", "chain-e")} == {"skipped"}
    assert not a.exists() and not b.exists(), "--dry changed the host"

    fixed = run("fix", "--data", "fix=true")
    assert fixed["chain-a"]["outcome"] == "fixed"
    assert fixed["chain-b"]["outcome"] == "fixed", fixed["chain-b"]
    assert fixed["chain-b"]["message"].startswith("fixed (was: evaluated after the fix of chain-a: expected")
    assert fixed["chain-b"]["fix"]["commands"], "the commands a nested fix ran are reported"
    assert fixed["chain-c"]["outcome"] == "pass" and "after the fix of chain-b" in fixed["chain-c"]["message"]
    assert fixed["chain-d"]["outcome"] == "fail" and fixed["chain-d"]["fix"] == {"manual": "make it by hand"}
    assert fixed["chain-e"]["outcome"] == "fail" and "not in the plan" in fixed["chain-e"]["fix"]["refused"]
    assert a.exists() and b.exists() and not (tmp_path / "e").exists()

    again = run("again")
    assert {c: r["outcome"] for c, r in again.items()} == {
        "chain-a": "pass", "chain-b": "pass", "chain-c": "pass", "chain-d": "fail", "chain-e": "fail"}
    # The next run plans the disruptive fix where the operator sees it, and runs it.
    planned = run("dry2", "--dry", "--data", "fix=true")["chain-e"]
    assert planned["outcome"] == "would-fix" and planned["fix"]["commands"]
    assert run("fix2", "--data", "fix=true")["chain-e"]["outcome"] == "fixed"


def test_a_waived_check_a_fix_unblocks_is_waived_not_fixed(tmp_path):
    """The checks a fix unblocks are judged like the first look: a live waiver makes a failure
    `waived` (its fix does not run) and a gate keeps its `gate_for`."""
    (tmp_path / "checks").mkdir()
    a, b = tmp_path / "a", tmp_path / "b"
    _check(tmp_path, "chain-a", a, fix=_touch(a))
    _check(tmp_path, "chain-b", b, depends_on=["chain-a"], fix=_touch(b))
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text("- check: chain-b\n  reason: b is made by another team\n  expires: 2999-01-01\n")
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed"}})
    report = tmp_path / "fix.json"
    done = run_pyinfra(inventory, "sweep.py", "--data", "fix=true", "--data", "checks=chain-b",
                       "--data", f"waivers={waivers}", "--data", f"report={report}",
                       env={"KEYSTONE_CHECKS_DIR": str(tmp_path / "checks")})
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    results = {r["check"]: r for r in read_report(report)["hosts"][0]["results"]}
    assert results["chain-a"]["outcome"] == "fixed" and results["chain-a"]["gate_for"] == ["chain-b"]
    assert results["chain-b"]["outcome"] == "waived", results["chain-b"]
    assert "b is made by another team" in results["chain-b"]["message"]
    assert a.exists() and not b.exists(), "a waived failure is not fixed"
