"""A lab run with `pytest -n 2 --dist loadgroup` keeps each chain of lab tests on one worker, in
order (tests/conftest.py: pytest_xdist_make_scheduler): the UKI flavour's test with that flavour's
faults, the healthy-boot module; the other faults go wherever a worker is free. A real pytest-xdist
run over stand-in tests with the lab's own file names and fault ids (fast: no VM)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from keystone_checks.lab.reboot_faults import REBOOT_FAULTS

TESTS = Path(__file__).resolve().parent

STAND_IN = '''
import os, time, pytest
from keystone_checks.lab.reboot_faults import REBOOT_FAULTS

def test_lanzaboote_style_flavour_boots_and_sweeps_healthy():
    time.sleep(0.1)

@pytest.mark.parametrize("fault", REBOOT_FAULTS, ids=[f.name for f in REBOOT_FAULTS])
def test_fault_through_a_reboot(fault):
    time.sleep(0.1)
'''


def test_each_chain_runs_on_one_worker_in_order(tmp_path):
    lab = tmp_path / "tests" / "lab"
    lab.mkdir(parents=True)
    (tmp_path / "tests" / "conftest.py").write_text((TESTS / "conftest.py").read_text())
    (lab / "test_lab_ksboot_reboot.py").write_text(STAND_IN)
    (lab / "test_lab_ksboot.py").write_text("def test_a():\n    pass\n\n\ndef test_b():\n    pass\n")
    # collected before the chains (file order), as tests/lab/conftest.py orders the real lab
    (lab / "test_a_other.py").write_text(
        "import pytest\n\n\n@pytest.mark.parametrize('i', range(12))\ndef test_o(i):\n    pass\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup",
                           "-v", "tests"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    ran = re.findall(r"\[(gw\d)\] \[ *\d+%\] PASSED tests/lab/(\S+)", done.stdout)
    uki = ["test_lab_ksboot_reboot.py::test_lanzaboote_style_flavour_boots_and_sweeps_healthy"] + [
        f"test_lab_ksboot_reboot.py::test_fault_through_a_reboot[{f.name}]" for f in REBOOT_FAULTS if f.flavour == "uki"]
    healthy = ["test_lab_ksboot.py::test_a", "test_lab_ksboot.py::test_b"]
    assert len(uki) >= 2 and len(ran) == 12 + 2 + 1 + len(REBOOT_FAULTS), done.stdout[-3000:]
    # the collection's order, not the biggest chains first (they would wait for their disk in a cold run)
    assert all(test.startswith("test_a_other.py") for _, test in ran[:6]), ran[:6]
    for chain in (uki, healthy):
        on = [(worker, test) for worker, test in ran if test in chain]
        assert len({worker for worker, _ in on}) == 1, (chain, ran)
        assert [test for _, test in on] == chain, "a chain's tests run in their order"
    assert {worker for worker, _ in ran} == {"gw0", "gw1"}, "the rest spreads over both workers"
