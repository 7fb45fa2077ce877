"""Selection (--checks/--tags/--severity, host data checks/tags/severity), dependencies as gates,
bad phase/role names, roles as a list, --dry without --fix, and the report path of a host whose
host data is invalid: through the real CLI and the real pyinfra CLI on @local."""

from __future__ import annotations

import json

import pytest
from kc_helpers import read_report, run_pyinfra, write_inventory
from test_cli import E2E_CHECKS, assert_valid_report, cli

from keystone_checks.engine import hostdata
from keystone_checks.engine.catalog import Check
from keystone_checks.engine.selection import Selection, SelectionError, narrow, tags_of
from keystone_checks.errors import HostDataError

ENV = {"KEYSTONE_CHECKS_DIR": str(E2E_CHECKS)}


def make(id, severity="critical", depends_on=(), path="checks/zfs/x.yaml", tags=(), phases=("sweep",)):
    return Check(id=id, title="An example check", severity=severity, phases=list(phases), roles=["deployed"],
                 guide={"document": "d", "section": "s"}, why="because it matters", gather={}, expect={},
                 depends_on=list(depends_on), tags=list(tags), path=path)


CATALOG = [make("base", "warning"), make("mid", "info", ["base"], "checks/luks/m.yaml"),
           make("top", "critical", ["mid"], "checks/luks/t.yaml", tags=["export"]),
           make("other", "info", path="checks/nix/o.yaml"),
           make("elsewhere", phases=["boot"])]
SWEEP = [c for c in CATALOG if "sweep" in c.phases]


def ids(checks):
    return [c.id for c in checks]


def test_selection_keeps_dependencies_as_gates_in_dependency_order():
    run, gates = narrow(Selection(checks=["top"]), SWEEP, CATALOG)
    assert ids(run) == ["base", "mid", "top"]
    assert gates == {"base": ["top"], "mid": ["top"]}
    run, gates = narrow(Selection(), SWEEP, CATALOG)
    assert ids(run) == ids(SWEEP) and gates == {}


def test_severity_is_a_minimum_and_filters_combine():
    assert ids(narrow(Selection(severity="warning"), SWEEP, CATALOG)[0]) == ["base", "mid", "top"]  # mid: gate
    assert narrow(Selection(severity="warning"), SWEEP, CATALOG)[1] == {"mid": ["top"]}
    assert ids(narrow(Selection(severity="info"), SWEEP, CATALOG)[0]) == ids(SWEEP)
    assert ids(narrow(Selection(tags=["luks"], severity="critical"), SWEEP, CATALOG)[0]) == ["base", "mid", "top"]
    assert ids(narrow(Selection(tags=["nix"]), SWEEP, CATALOG)[0]) == ["other"]


def test_tags_are_the_domain_plus_the_tags_entry():
    assert tags_of(CATALOG[2]) == ["luks", "export"]
    assert tags_of(make("flat", path="e2e_checks/x.yaml")) == []  # a flat catalog's directory is no domain
    assert ids(narrow(Selection(tags=["export"]), SWEEP, CATALOG)[0]) == ["base", "mid", "top"]


@pytest.mark.parametrize("selection, words", [
    (Selection(checks=["nope"]), ["unknown check id(s) nope", "valid ids: base, elsewhere, mid, other, top"]),
    (Selection(tags=["banana"]), ["unknown tag(s) banana", "valid tags: export, luks, nix, zfs"]),
    (Selection(severity="high"), ["unknown severity 'high'", "critical, warning, info"]),
    (Selection(checks=["elsewhere"]), ["elsewhere not part of this run", "elsewhere is in boot"]),
    (Selection(checks=["other"], severity="critical"), ["selects no check of this run"]),
])
def test_bad_selections_are_errors_naming_value_and_choices(selection, words):
    with pytest.raises(SelectionError) as caught:
        narrow(selection, SWEEP, CATALOG, what="run sweep")
    for word in words:
        assert word in str(caught.value), str(caught.value)
    assert str(caught.value).startswith("run sweep: ")


def test_host_data_selection_and_role_grammar():
    context = hostdata.resolve("h", {"role": "installer, controller", "checks": "a-b,c", "tags": ["zfs"], "severity": "warning"})
    assert hostdata.roles_of("h", context) == ["installer", "controller"]
    assert context["checks"] == "a-b,c" and context["tags"] == ["zfs"]
    for data, words in [({"role": "installer,banana"}, "'banana' is not one of controller, installer, deployed"),
                        ({"role": ""}, "names no role"),
                        ({"role": "deployed", "checks": "Bad_Id"}, "host data 'checks': 'Bad_Id' is not valid"),
                        ({"role": "deployed", "checks": ["ok", 3]}, "3 is not a name"),
                        ({"role": "deployed", "tags": ",".join(["t"] * 300)}, "at most 256"),
                        ({"role": "deployed", "severity": "high"}, "'high' is not a severity")]:
        with pytest.raises(HostDataError) as caught:
            hostdata.resolve("h", data)
        assert words in str(caught.value), str(caught.value)


# -- the command line -------------------------------------------------------------------------------


def test_list_rejects_unknown_phase_role_and_selection():
    for args, words in [(["--phase", "bogus"], ["unknown phase 'bogus'", "preflight", "before-reboot", "sweep"]),
                        (["--role", "bogus"], ["unknown role 'bogus'", "controller, installer, deployed"]),
                        (["--checks", "nope"], ["unknown check id(s) nope", "pool-healthy"]),
                        (["--tags", "nope"], ["unknown tag(s) nope", "zfs"]),
                        (["--severity", "high"], ["invalid choice: 'high'", "critical"]),
                        (["--phase", "preflight", "--checks", "pool-healthy"], ["not part of this run"])]:
        done = cli("list", *args)
        assert done.returncode == 3, (args, done.stdout)
        assert "Traceback" not in done.stderr
        for word in words:
            assert word in done.stderr, (args, done.stderr)


def test_list_selection_shows_gates():
    done = cli("list", "--checks", "pool-healthy", "--json")
    assert done.returncode == 0, done.stderr
    listed = {c["id"]: c for c in json.loads(done.stdout)}
    assert set(listed) == {"pool-healthy", "pool-imported", "zfs-module-loaded"}
    assert listed["pool-imported"]["gate_for"] == ["pool-healthy"] and "gate_for" not in listed["pool-healthy"]
    critical = json.loads(cli("list", "--phase", "before-reboot", "--severity", "critical", "--tags", "unmount", "--json").stdout)
    assert {c["id"] for c in critical if "gate_for" not in c} == {"no-processes-using-mnt", "no-datasets-mounted-under-mnt"}
    assert all("unmount" in c["tags"] for c in critical if "gate_for" not in c)
    phase = json.loads(cli("list", "--phase", "before-reboot", "--json").stdout)
    assert {c["id"] for c in phase} >= {"credstore-closed-before-export", "no-datasets-mounted-under-mnt",
                                         "target-disk-no-imported-pool", "pool-exported-cleanly"}


def test_run_selection_gates_and_roles(tmp_path):
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"installer_marker": str(tmp_path / "m")}})
    out = tmp_path / "r.json"
    done = cli("run", "sweep", "-i", str(inventory), "--role", "deployed", "--role", "installer,controller",
               "--checks", "after-tiny", "--report", f"json:{out}", env=ENV)
    assert done.returncode == 2, done.stdout + done.stderr  # the gate root-is-tiny fails (critical)
    report = json.loads(out.read_text())
    assert_valid_report(report)
    (host,) = report["hosts"]
    assert host["roles"] == ["deployed", "installer", "controller"]
    results = {r["check"]: r for r in host["results"]}
    assert set(results) == {"root-is-tiny", "after-tiny"}, "only the selection and its gate ran"
    assert results["root-is-tiny"]["gate_for"] == ["after-tiny"] and results["root-is-tiny"]["outcome"] == "fail"
    assert results["after-tiny"]["outcome"] == "skipped" and "gate_for" not in results["after-tiny"]

    done = cli("run", "sweep", "-i", str(inventory), "--data", "role=deployed,controller", "--checks", "root-has-space",
               "--report", f"json:{out}", env=ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["hosts"][0]["roles"] == ["deployed", "controller"]
    assert [r["check"] for r in report["hosts"][0]["results"]] == ["root-has-space"]


@pytest.mark.parametrize("args, words", [
    (["--checks", "nope"], ["unknown check id(s) nope", "valid ids: after-tiny"]),
    (["--tags", "nope"], ["unknown tag(s) nope"]),
    (["--role", "banana"], ["unknown role 'banana'"]),
    (["--data", "role=deployed,banana"], ["'banana' is not one of"]),
    (["--dry"], ["--dry lists the fix commands", "--fix --dry"]),
])
def test_run_usage_errors_exit_3_before_any_host(tmp_path, args, words):
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed"}})
    done = cli("run", "sweep", "-i", str(inventory), *args, "--report", f"json:{tmp_path / 'r.json'}", env=ENV)
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in done.stderr, done.stderr
    assert not (tmp_path / "r.json").exists(), "a usage error contacts no host"


def test_fix_playbook_takes_dry_without_fix(tmp_path):
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed"}})
    done = cli("run", "playbooks/fix/stop-scrub.py", "-i", str(inventory), "--dry", "--report", f"json:{tmp_path / 'r.json'}")
    assert "--dry lists" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert (tmp_path / "r.json").exists()


def test_playbook_selection_through_host_data(tmp_path):
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed", "installer_marker": str(tmp_path / "m")}})
    report = tmp_path / "r.json"
    done = run_pyinfra(inventory, "sweep.py", "--data", "checks=after-tiny", "--data", f"report={report}", env=ENV)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-2000:]
    data = read_report(report)
    assert_valid_report(data)
    results = {r["check"]: r for r in data["hosts"][0]["results"]}
    assert set(results) == {"root-is-tiny", "after-tiny"} and results["root-is-tiny"]["gate_for"] == ["after-tiny"]

    done = run_pyinfra(inventory, "sweep.py", "--data", "checks=no-such-check", "--data", f"report={report}", env=ENV)
    (host,) = read_report(report)["hosts"]
    assert host["status"] == "error" and "unknown check id(s) no-such-check" in host["error"], host
    assert "valid ids: after-tiny" in host["error"]


def test_invalid_host_data_still_writes_the_report_where_asked(tmp_path):
    """A bare @local with no role: the host is an error, and the report goes to --data report=PATH."""
    report = tmp_path / "where" / "asked.json"
    done = run_pyinfra("@local", "sweep.py", "--data", f"report={report}", env=ENV, cwd=tmp_path)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-2000:]
    (host,) = read_report(report)["hosts"]
    assert host["status"] == "error" and "host data 'role': missing" in host["error"], host
    assert not (tmp_path / "reports").exists(), "nothing written to the default path"
