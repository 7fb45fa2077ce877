"""Evaluation: JSON Schema conditions -> outcomes with 'expected ... found ...' in operator words."""

from keystone_checks.engine.catalog import Check
from keystone_checks.engine.evaluate import Outcome, evaluate
from keystone_checks.engine.gather import evaluate_host, parse_outputs
from keystone_checks.engine.plan import plan_host
from keystone_checks.facts.base import ProbeOutput


def make_check(**overrides):
    base = dict(id="c", title="A check", severity="critical", phases=["sweep"], roles=["deployed"],
                guide={"document": "troubleshooting-build-and-deploy.md", "section": "Slow deployment"},
                why="because", gather={}, expect={})
    base.update(overrides)
    return Check(**base)


def test_pass_and_fail_messages_name_expected_and_found():
    check = make_check(expect={"properties": {"store": {"properties": {"avail": {
        "minimum": "{{ min_nix_free_bytes }}", "description": "at least 10 GB free under /nix"}}}}})
    ok = evaluate(check, {"store": {"avail": 20}}, {"min_nix_free_bytes": 10})
    assert ok.outcome == Outcome.PASS
    bad = evaluate(check, {"store": {"avail": 5}}, {"min_nix_free_bytes": 10})
    assert bad.outcome == Outcome.FAIL
    assert bad.expected == ["at least 10 GB free under /nix"]
    assert bad.found == ["store.avail = 5"]
    assert "expected at least 10 GB free under /nix, found store.avail = 5" == bad.message


def test_generic_wording_without_description():
    check = make_check(expect={"properties": {"zfs": {"properties": {"loaded": {"const": True}}}}})
    result = evaluate(check, {"zfs": {"loaded": False}}, {})
    assert result.message == "expected zfs.loaded = true, found zfs.loaded = false"


def test_a_failure_names_what_it_looked_at():
    check = make_check(gather={"target": {"fact": "disks.TargetDisk", "args": {"path": "{{ disk }}"}},
                               "pools": {"fact": "zfs.PoolList", "args": {}}},
                       expect={"properties": {"target": {"properties": {"exists": {"const": True}}}}})
    bad = evaluate(check, {"target": {"exists": False}, "pools": {}}, {"disk": "/dev/sdz"})
    assert bad.message == ("expected target.exists = true, found target.exists = false "
                           "(looked at: target: disks.TargetDisk path=/dev/sdz)")
    assert evaluate(check, {"target": {"exists": True}, "pools": {}}, {"disk": "/dev/sdz"}).message == "ok"


def test_template_with_missing_host_data_is_error_not_pass():
    check = make_check(expect={"properties": {"x": {"minimum": "{{ nowhere }}"}}})
    result = evaluate(check, {"x": 1}, {})
    assert result.outcome == Outcome.ERROR and "nowhere" in result.message


def test_dependencies_skip_and_fact_errors_error_and_roles_skip():
    parent = make_check(id="parent", gather={"z": {"fact": "zfs.ModuleStatus"}},
                        expect={"properties": {"z": {"properties": {"loaded": {"const": True}}}}})
    child = make_check(id="child", depends_on=["parent"], gather={"z": {"fact": "zfs.ModuleStatus"}}, expect={})
    broken = make_check(id="broken", gather={"l": {"fact": "luks.MappingStatus", "args": {"mapping": "credstore"}}})
    other_role = make_check(id="installer-only", roles=["installer"])
    checks = [parent, child, broken, other_role]
    plan = plan_host(checks, ["deployed"], {"credstore_name": "credstore"})
    assert len(plan.probes) == 2, "the same fact with the same args must be gathered once"
    outputs = [ProbeOutput(0, ["loaded no", "kernel 6.1", "available no"]),
               ProbeOutput(127, [], ["cryptsetup: command not found"])]
    results = evaluate_host(checks, plan, parse_outputs(checks, plan, outputs), {})
    assert results["parent"].outcome == Outcome.FAIL
    assert results["child"].outcome == Outcome.SKIPPED and "parent (fail)" in results["child"].message
    assert results["broken"].outcome == Outcome.ERROR and "cryptsetup" in results["broken"].message
    assert results["installer-only"].outcome == Outcome.SKIPPED


def test_parser_crash_becomes_error():
    check = make_check(gather={"d": {"fact": "disks.TargetDisk", "args": {"path": "/dev/vda"}}})
    plan = plan_host([check], ["deployed"], {})
    results = evaluate_host([check], plan, parse_outputs([check], plan, [ProbeOutput(0, ["{not json"])]), {})
    assert results["c"].outcome == Outcome.ERROR and "invalid JSON" in results["c"].message


def test_phase_pulls_in_dependencies_from_other_phases():
    from keystone_checks.engine.plan import checks_for_phase

    base = make_check(id="base", phases=["preflight"])
    user = make_check(id="user", phases=["sweep"], depends_on=["base"])
    other = make_check(id="other", phases=["preflight"])
    assert [c.id for c in checks_for_phase([base, user, other], "sweep")] == ["base", "user"]


def test_dependency_on_a_check_for_another_role_does_not_block():
    pool = make_check(id="pool", roles=["deployed"])
    store = make_check(id="store", roles=["controller", "deployed"], depends_on=["pool"],
                       gather={"z": {"fact": "zfs.ModuleStatus"}}, expect={})
    plan = plan_host([pool, store], ["controller"], {})
    results = evaluate_host([pool, store], plan, parse_outputs([store], plan, [ProbeOutput(0, ["loaded no"])]), {})
    assert results["pool"].outcome == Outcome.SKIPPED and "role_skipped" not in results["pool"].to_dict()
    assert results["store"].outcome == Outcome.PASS
