"""Every registered fault really takes effect on a fresh clone (inject -> verify).

These prove the lab, not the checks. ``lab_host(fault=...)`` injects and verifies every fault it
is asked for (``faults.inject`` raises when the verify script fails), so a fault the matrix
(test_matrix.HOST_FAULTS) or the controller-side SSH test (test_lab_ssh_faults.CAUGHT_BY) already
runs is proven there; only the faults no other lab test injects are restored here (each restore and
injection costs ≈ 20 s of the CI run under TCG).
"""

import pytest
from test_lab_ssh_faults import CAUGHT_BY
from test_matrix import HOST_FAULTS

from keystone_checks.lab import faults

pytestmark = pytest.mark.lab

ONLY_HERE = [f.name for f in faults.FAULTS if f.name not in set(HOST_FAULTS) | set(CAUGHT_BY)]


@pytest.mark.parametrize("name", ONLY_HERE)
def test_fault_is_really_present(lab_host, lab_zfs, name):
    f = faults.get(name)
    if lab_zfs not in f.variants:
        pytest.skip(f"{name} only applies to {', '.join(f.variants)}")
    h = lab_host(fault=name, zfs=lab_zfs)
    assert h.fault_present()
    if f.control:  # normal ssh must be broken, the lab's control channel must work
        assert h.ssh_answers() == (False, True)
    # A fault's inventory data overrides: lab_host's inject checks the written inventory for every fault.
    if f.hard_kill:
        h.kill()


def test_export_with_credstore_open_matches_the_guide(lab_host, lab_zfs):
    """ZFS 2.1 refuses ('pool is busy'); ZFS 2.3 hangs (the guide's 'hangs at pool export')."""
    h = lab_host(fault="credstore-open-at-export", zfs=lab_zfs)
    # The ESP mounted at /mnt/boot (on the root dataset) would make the export fail on /mnt first;
    # nixos-anywhere unmounts it (umount -R /mnt) before exporting, so does this test.
    rc, out, err = h.ssh("umount /mnt/boot; timeout -k 5 30 zpool export rpool", timeout=60)
    if lab_zfs == "zfs21":
        assert rc == 1 and "pool is busy" in err
    else:
        assert rc in (124, 137, 255)
    h.kill()
