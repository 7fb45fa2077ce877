"""The saved lab states really are what the checks expect to find."""

import pytest

pytestmark = pytest.mark.lab


def test_installer_looks_like_the_iso(lab_host, lab_zfs):
    h = lab_host("installer", zfs=lab_zfs)
    rc, out, _ = h.ssh("test -e /etc/keystone-installer && findmnt -n -o FSTYPE /iso && "
                       "grep -c '^zfs ' /proc/modules && wipefs -n /dev/vda | wc -l && zpool list -H | wc -l")
    assert rc == 0
    assert out.split() == ["squashfs", "1", "0", "0"]
    assert h.data["role"] == "installer" and h.data["disk"] == "/dev/vda"


def test_installed_left_a_clean_exported_pool(lab_host, lab_zfs):
    h = lab_host("installed", zfs=lab_zfs)
    rc, out, _ = h.ssh("zpool import")
    assert rc == 0 and "pool: rpool" in out and "ONLINE" in out
    assert h.ssh("cryptsetup status credstore")[0] != 0
    assert h.checksum() == h.expected_checksum  # imports, reads, exports cleanly again
    assert "pool: rpool" in h.ssh("zpool import")[1]


def test_deployed_has_the_keystone_layout(lab_host, lab_zfs):
    h = lab_host("deployed", zfs=lab_zfs)
    rc, out, err = h.ssh(
        "zpool list -H -o health rpool; zfs get -H -o value keystatus rpool/crypt; "
        "zfs get -H -o value keylocation rpool/crypt; cryptsetup status credstore | head -n 1; "
        "stat -c %s /etc/credstore/zfs-sysroot.mount; findmnt -n -o FSTYPE /boot; findmnt -n -o FSTYPE /nix; "
        "nix-env --list-generations -p /nix/var/nix/profiles/system | wc -l; "
        "[ \"$(readlink -f /run/current-system)\" = \"$(readlink -f /nix/var/nix/profiles/system)\" ] && echo newest; "
        "systemctl is-system-running; nft list chain inet filter input | grep -c 'tcp dport 22 accept'")
    assert rc == 0, err
    assert out.split("\n")[:-1] == [
        "ONLINE", "available", "file:///etc/credstore/zfs-sysroot.mount",
        "/dev/mapper/credstore is active and is in use.", "32", "vfat", "zfs", "3", "newest", "running", "1"]
    assert h.checksum() == h.expected_checksum
    assert h.data["pool"] == "rpool"


def test_deployed_starting_state(lab_host, lab_zfs):
    h = lab_host("deployed-starting", zfs=lab_zfs)
    assert h.ssh("systemctl is-system-running")[1].strip() == "starting"
    assert h.ssh("zfs get -H -o value keystatus rpool/crypt")[1].strip() == "available"


def test_clones_are_independent(lab_host, lab_zfs):
    a, b = lab_host("deployed", zfs=lab_zfs), lab_host("deployed", zfs=lab_zfs)
    assert a.ssh("touch /srv/keystone/only-in-a")[0] == 0
    assert b.ssh("test -e /srv/keystone/only-in-a")[0] != 0
