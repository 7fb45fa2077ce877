"""The fault matrix: for each fault the guides describe, on a fresh lab clone:

1. the phase run ends with exactly the expected check(s) failing (info-severity notes aside, e.g.
   no TPM2 in a VM), every other applicable check passing or skipped;
2. the fix with --dry lists the commands and changes nothing (data checksum intact);
3. the fix repairs it (`fixed`), and a re-run has no failures; a fix that unblocks a disruptive or
   destructive one (which never runs unless it was in the plan shown) takes another round, as it
   would for an operator: dry run, fix, re-run, at most MAX_ROUNDS;
4. the data written before the fault is intact (checksum).

Faults whose remedy is manual (the check carries `manual` text) stop after step 1.
Each run appends a row to $KC_MATRIX_OUT (JSON lines) when set: the per-fault table in docs/lab.md
(docs/lab-matrix.md) is generated from those rows by `python -m keystone_checks.lab table`, not by hand.
"""

import json
import os

import pytest
from kc_helpers import LAB_DATA, read_report, run_pyinfra

from keystone_checks.engine.catalog import load_catalog
from keystone_checks.engine.fix import forces_import
from keystone_checks.lab import faults

pytestmark = pytest.mark.lab

CATALOG = {c.id: c for c in load_catalog()}
# The lab guests have 1 GB of RAM and an emulated (TCG) CPU whose load is always high: the guide's
# 16 GB recommendation and the load threshold are not what these faults test.
# Faults that break SSH itself are seen from the controller (network checks), not by a host phase.
# A fault also needs its checks to apply to the lab state's role (a failed unit on the installer ISO
# is not a documented problem: no-failed-units is for deployed servers).
_ROLE = {"installer": "installer", "installed": "installer", "installed-foreign": "installer",
         "deployed": "deployed", "deployed-starting": "deployed"}
HOST_FAULTS = sorted(name for name, checks in faults.EXPECTED_CHECKS.items()
                     if all(c in CATALOG and _ROLE[faults.get(name).role] in CATALOG[c].roles for c in checks))


MAX_ROUNDS = 3


def _phase_for(check_ids):
    # zfs before deployment: an installed disk not yet exported is the zfs phase's (export) business;
    # the deployment phase also holds the pre-install checks of a blank target disk.
    preferred = ("sweep", "zfs", "deployment", "preflight", "boot", "performance", "recovery")
    phases = [set(CATALOG[c].phases) for c in check_ids]
    return next(p for p in preferred if all(p in s for s in phases))


def _run(host, tmp_path, playbook, tag, *args):
    path = tmp_path / f"{tag}.json"
    done = run_pyinfra(host.inventory_path, playbook, *LAB_DATA, *args, "--data", f"report={path}", timeout=900)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    (entry,) = read_report(path)["hosts"]
    assert entry["status"] == "ok", entry["error"]
    return {r["check"]: r for r in entry["results"]}


def _consent(host, automated) -> list[str]:
    """What an operator gives on purpose: on the bare installer (a blank target disk about to be
    formatted; never on an installed one) the consent to wipe the inventory's disk, since a fix there
    may unblock the wipe of leftover signatures; force import where the fix forces it (the foreign
    pool is the lab's own)."""
    data = []
    if host.state == "installer":
        data += ["allow_destructive=true", f"destructive_device={host.name}:{host.data['disk']}"]
    if any(forces_import(CATALOG[c].fix.steps) for c in automated):
        data.append("allow_force_import=true")
    return [arg for item in data for arg in ("--data", item)]


def _failing(results):
    return {c for c, r in results.items() if r["outcome"] in ("fail", "fix-failed", "error") and r["severity"] != "info"}


# Known product gaps, found by this matrix (strict xfail: the test starts failing when fixed).
KNOWN_GAPS: dict[str, str] = {}


def _marks(name: str) -> list:
    marks = [pytest.mark.xfail(reason=KNOWN_GAPS[name], strict=True)] if name in KNOWN_GAPS else []
    return marks + ([pytest.mark.superseded] if name in faults.SUPERSEDED else [])


@pytest.mark.parametrize("fault_name", [pytest.param(name, marks=_marks(name)) for name in HOST_FAULTS])
def test_fault_is_caught_and_fixed(lab_host, lab_zfs, fault_name, tmp_path):
    fault = faults.get(fault_name)
    if lab_zfs not in fault.variants:
        pytest.skip(f"{fault_name} exists on {', '.join(fault.variants)} only (ZFS behaviour differs)")
    expected = set(faults.EXPECTED_CHECKS[fault_name])
    host = lab_host(fault=fault_name, zfs=lab_zfs)  # restores the fault's own state, then injects it
    phase = _phase_for(expected)

    before = _run(host, tmp_path, f"{phase}.py", "before")
    assert _failing(before) == expected, {c: before[c]["message"] for c in _failing(before) ^ expected if c in before}
    row = {"zfs": lab_zfs, "fault": fault_name, "phase": phase, "caught_by": sorted(expected), "fix": "manual"}

    automated = [c for c in expected if CATALOG[c].fix and CATALOG[c].fix.steps]
    manual = expected - set(automated)
    fixed_in_order: list[str] = []
    rounds = 0
    while automated and rounds < MAX_ROUNDS:
        # One operator round: dry run (lists the commands, changes nothing), fix, re-run. A fix may
        # unblock a disruptive or destructive one, which only the next round's plan may run.
        rounds += 1
        checksum = host.checksum()
        consent = _consent(host, automated)
        dry = _run(host, tmp_path, f"{phase}.py", f"dry{rounds}", "--dry", "--data", "fix=true", *consent)
        planned = [c for c, r in dry.items() if r["outcome"] == "would-fix"]
        for check_id in (automated if rounds == 1 else planned):
            assert dry[check_id]["outcome"] == "would-fix" and dry[check_id]["fix"]["commands"], dry[check_id]
        assert planned, {c: r for c, r in dry.items() if c in _failing(dry)}
        assert host.checksum() == checksum, "--dry changed the host"
        fixed = _run(host, tmp_path, f"{phase}.py", f"fix{rounds}", "--data", "fix=true", *consent)
        for check_id in planned:
            assert fixed[check_id]["outcome"] == "fixed", fixed[check_id]["message"]
        fixed_in_order += [c for c, r in fixed.items() if r["outcome"] == "fixed"]
        after = _run(host, tmp_path, f"{phase}.py", f"after{rounds}")
        if _failing(after) == manual:
            break
    else:
        if automated:
            pytest.fail(f"still failing after {MAX_ROUNDS} fix rounds: "
                        f"{ {c: after[c]['message'] for c in _failing(after) - manual} }")
    if automated:
        # Every check fixed, in order: the fault's own, those a fix unblocked, later rounds'.
        row["fix"] = "; ".join(f"{c}: " + " -> ".join(CATALOG[c].fix.ops) for c in fixed_in_order)
        row["rounds"] = rounds
    assert host.checksum() == host.expected_checksum, "data written before the fault changed"
    if os.environ.get("KC_MATRIX_OUT"):
        with open(os.environ["KC_MATRIX_OUT"], "a") as out:
            out.write(json.dumps(row) + "\n")
