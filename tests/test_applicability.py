"""Applicability by detected layout: ``applies_when`` on a check, the ``system.Layout``
fact, and host data ``layout`` pinning it. A check whose condition does not hold is ``skipped`` as
not applicable and gates nothing; one whose condition cannot be judged is ``error``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kc_helpers import REPO, read_report, run_pyinfra, write_inventory

from keystone_checks.engine import hostdata
from keystone_checks.engine.catalog import Check, validate
from keystone_checks.engine.evaluate import Outcome
from keystone_checks.engine.gather import evaluate_host, parse_outputs
from keystone_checks.engine.plan import plan_host
from keystone_checks.errors import HostDataError
from keystone_checks.facts.base import ProbeOutput

FIXTURES = Path(__file__).parent / "fixtures" / "facts"
LAYOUT_GATHER = {"fact": "system.Layout",
                 "args": {"boot_mount": "{{ boot_mount }}", "pool": "{{ pool }}", "pinned": "{{ layout }}"}}


def _check(id, applies_when=None, depends_on=(), expect=None):
    return Check(id=id, title="An example check", severity="critical", phases=["sweep"], roles=["deployed"],
                 guide={"document": "troubleshooting-build-and-deploy.md", "section": "Slow deployment"},
                 why="because it matters", gather={"layout": LAYOUT_GATHER}, expect=expect or {},
                 depends_on=list(depends_on), applies_when=applies_when)


ZFS_ONLY = {"gather": "layout", "description": "the host's storage is ZFS",
            "schema": {"properties": {"storage": {"const": "zfs"}}}}


def _fixture(name):
    case = yaml.safe_load((FIXTURES / "system.Layout" / f"{name}.yaml").read_text())
    return ProbeOutput(case["exit_code"], case["output"].splitlines(), [])


def _evaluate(checks, output: ProbeOutput, data=None):
    context = hostdata.resolve("h", {"role": "deployed", **(data or {})})
    plan = plan_host(checks, ["deployed"], context)
    outputs = [output for _ in plan.probes]
    return evaluate_host(checks, plan, parse_outputs(plan.checks, plan, outputs), context)


def test_unmet_condition_is_not_applicable_and_gates_nothing():
    gate = _check("zfs-gate", ZFS_ONLY)
    after = _check("after-gate", depends_on=["zfs-gate"], expect={"properties": {"layout": {"required": ["storage"]}}})
    results = _evaluate([gate, after], _fixture("installed-systemd-boot"))  # no pool, no cryptroot: storage null
    assert results["zfs-gate"].outcome == Outcome.SKIPPED and results["zfs-gate"].not_applicable
    assert results["zfs-gate"].message.startswith("not applicable: applies when the host's storage is ZFS")
    assert '"storage": null' in results["zfs-gate"].message
    assert results["after-gate"].outcome == Outcome.PASS  # not blocked by the not-applicable dependency


def test_met_condition_evaluates_the_check():
    gate = _check("zfs-gate", ZFS_ONLY, expect={"properties": {"layout": {"properties": {"boot_loader": {"const": "lanzaboote"}}}}})
    output = _fixture("installed-systemd-boot")
    pinned = ProbeOutput(0, ["pin storage zfs"] + output.stdout, [])  # what the probe prints for layout.storage=zfs
    results = _evaluate([gate], pinned, {"layout": {"storage": "zfs"}})
    assert results["zfs-gate"].outcome == Outcome.FAIL  # pinned zfs: applies; systemd-boot detected, not lanzaboote
    assert "boot_loader" in results["zfs-gate"].message


def test_condition_that_cannot_be_judged_is_error_and_blocks_dependents():
    gate = _check("zfs-gate", ZFS_ONLY)
    after = _check("after-gate", depends_on=["zfs-gate"])
    results = _evaluate([gate, after], ProbeOutput(124, [], []))
    assert results["zfs-gate"].outcome == Outcome.ERROR
    assert "cannot tell whether it applies (the host's storage is ZFS)" in results["zfs-gate"].message
    assert results["after-gate"].outcome == Outcome.SKIPPED and not results["after-gate"].gates_nothing


def test_pinned_layout_replaces_detection_and_says_so():
    from keystone_checks.facts.system import Layout

    value = Layout().parse(_fixture("pinned-over-detected"))
    assert (value["storage"], value["boot_loader"]) == ("ext4-luks", "lanzaboote")
    assert value["detected"]["boot_loader"] == "systemd-boot" and value["pinned"] == ["boot_loader", "storage"]


@pytest.mark.parametrize("layout, message", [
    ({"storage": "btrfs"}, "storage: 'btrfs' is not one of 'zfs', 'ext4-luks'"),
    ({"bootloader": "grub"}, "unknown key 'bootloader'"),
    ({"installer": "yes"}, "installer: 'yes' is not one of True, False"),
    ("zfs", "expected dict"),
])
def test_bad_layout_host_data_names_host_and_key(layout, message):
    with pytest.raises(HostDataError) as raised:
        hostdata.resolve("srv1", {"role": "deployed", "layout": layout})
    assert "host srv1: host data 'layout'" in str(raised.value) and message in str(raised.value)


def test_bad_disks_host_data_names_host_and_key():
    with pytest.raises(HostDataError, match="host srv1: host data 'disks': 'sda' is not valid: not an absolute path"):
        hostdata.resolve("srv1", {"role": "deployed", "disks": ["/dev/sda", "sda"]})


def test_every_applies_when_in_the_catalog_names_its_own_gather():
    checks, problems = validate([REPO / "checks"])
    assert problems == []
    judged = [c for c in checks if c.applies_when]
    assert {"pool-imported", "pool-healthy", "crypt-keys-loaded", "root-dataset-mounted"} <= {c.id for c in judged}
    for check in judged:
        assert check.applies_when["gather"] in check.gather


ZFS_DEPLOYED = ("pool-imported", "pool-healthy", "crypt-keys-loaded", "crypt-datasets-mounted",
                "no-scrub-running", "arc-fits-ram", "next-boot-hostid-matches-pool", "next-boot-key-location")


def test_pinned_ext4_layout_makes_the_zfs_checks_not_applicable_in_a_real_run(tmp_path):
    """A real pyinfra sweep on @local: with layout.storage pinned to ext4-luks (Keystone v0.2+ ext4)
    every deployed ZFS check is skipped as not applicable; without the pin they are not."""
    reports = {}
    for name, data in (("pinned", {"layout": {"storage": "ext4-luks"}}), ("detected", {})):
        report = tmp_path / f"{name}.json"
        inventory = write_inventory(tmp_path / f"{name}.py", {"@local": {"role": "deployed", "disk": "/dev/kc-absent", **data}})
        done = run_pyinfra(inventory, "sweep.py", "--data", f"report={report}")
        assert "Traceback" not in done.stdout + done.stderr, (done.stdout + done.stderr)[-3000:]
        (host,) = read_report(report)["hosts"]
        reports[name] = {r["check"]: r for r in host["results"]}
    for check_id in ZFS_DEPLOYED:
        pinned = reports["pinned"][check_id]
        assert pinned["outcome"] == "skipped", pinned
        assert pinned["message"].startswith("not applicable: applies when the host's storage is ZFS"), pinned
        assert '"storage": "ext4-luks"' in pinned["message"]
        assert not reports["detected"][check_id]["message"].startswith("not applicable"), reports["detected"][check_id]
    # this Debian machine is no NixOS host: the root check never claims to have judged it
    assert reports["detected"]["root-dataset-mounted"]["outcome"] == "skipped"
    assert "a NixOS host" in reports["detected"]["root-dataset-mounted"]["message"]
    assert all(r["outcome"] != "pass" for k, r in reports["pinned"].items() if k in ZFS_DEPLOYED)


def test_bad_layout_in_the_inventory_is_a_host_error_not_a_traceback(tmp_path):
    report = tmp_path / "r.json"
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed", "layout": {"storage": "btrfs"}}})
    done = run_pyinfra(inventory, "next-boot.py", "--data", f"report={report}", cwd=tmp_path)
    assert "Traceback" not in done.stdout + done.stderr
    # the report path is read before the rest of the host data is validated: the report lands where asked
    assert report.is_file(), done.stdout + done.stderr
    assert not (tmp_path / "reports").exists()
    (host,) = read_report(report)["hosts"]
    assert host["status"] == "error" and "host data 'layout'" in host["error"] and "btrfs" in host["error"]
