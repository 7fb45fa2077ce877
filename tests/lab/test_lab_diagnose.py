"""diagnose confirms on a real guest: the same pasted error ("pool is busy") has several causes;
on an installed guest blocked by exactly one of them, the confirmed cause ranks first and the
host is not changed (read-only)."""

import json
import subprocess
import sys

import pytest

from keystone_checks.lab.faults import EXPECTED_CHECKS

pytestmark = pytest.mark.lab

TEXT = "+ zpool export -a\ncannot export 'rpool': pool is busy"


def confirm(host) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "keystone_checks.frontends.cli", "diagnose", "-i", str(host.inventory_path),
                           "--host", host.name, "--json", TEXT], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)["causes"]


@pytest.mark.parametrize("fault, cause", [
    ("credstore-open-at-export", "credstore-closed-before-export"),
    ("dataset-busy-under-mnt", "no-processes-using-mnt"),
])
def test_the_cause_present_on_the_guest_ranks_first(lab_host, lab_zfs, fault, cause):
    host = lab_host("installed", zfs=lab_zfs)
    host.inject(fault)
    causes = confirm(host)
    verdicts = [(c["id"], c["verdict"]) for c in causes]
    # The fault's true causes (one fault may leave several: the matrix's EXPECTED_CHECKS) are the
    # confirmed ones, and they rank above every cause the guest does not show.
    confirmed = [i for i, v in verdicts if v == "confirmed"]
    assert cause in confirmed, verdicts
    assert set(confirmed) <= set(EXPECTED_CHECKS[fault]), verdicts
    assert [v for _, v in verdicts[:len(confirmed)]] == ["confirmed"] * len(confirmed), verdicts
    ruled_out = [c["id"] for c in causes if c["verdict"] == "ruled out"]
    assert ruled_out, f"the other candidate causes were evaluated on the guest too: {causes}"
    assert host.fault_present(), "diagnose is read-only: the fault is still there"
