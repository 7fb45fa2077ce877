"""Every registered fault really takes effect on a fresh clone (inject -> verify).

These prove the lab, not the checks; the check/fix matrix (docs/lab.md) builds
on the same ``lab_host(fault=...)`` fixture.
"""

import pytest

from keystone_checks.lab import faults

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("name", [f.name for f in faults.FAULTS])
def test_fault_is_really_present(lab_host, lab_zfs, name):
    f = faults.get(name)
    if lab_zfs not in f.variants:
        pytest.skip(f"{name} only applies to {', '.join(f.variants)}")
    h = lab_host(fault=name, zfs=lab_zfs)
    assert h.fault_present()
    if f.control:  # normal ssh must be broken, the lab's control channel must work
        assert h.ssh("true", timeout=30)[0] != 0
        assert h.ssh("true", timeout=30, control=True)[0] == 0
    for k, v in f.data.items():
        assert h.data[k] == v and f"{k!r}: {v!r}" in h.inventory_path.read_text()
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
