"""Recovery from the ISO never mounts the installed system over the live one.

On a real Keystone pool (ncrmro/keystone modules/os/storage.nix@v0.2.0, the same in
modules/disko-single-disk-root/default.nix@v0.1.0) ``rpool/crypt/system`` has ``mountpoint=/``
and ``system/nix`` ``/nix``. The emergency-access fix imports with ``-R /mnt`` and
``zfs.mount_datasets`` mounts by the pool's own mountpoints, shallowest first, refusing before it
mounts anything unless the pool's altroot is the recovery root and every target is under it.

The operation's command runs here in a real ``sh`` with fake ``zpool``, ``zfs`` and ``mount`` on
PATH; the fakes answer like ZFS 2.1 does for a pool imported with ``-R`` (``zfs list`` shows the
altroot prefixed: ``/`` as ``/mnt``) and log every mount. The lab test
(tests/lab/test_lab_recovery.py) runs the same fix on a real pool.
"""

from __future__ import annotations

import subprocess

import pytest
from op_runner import run

from keystone_checks.operations import luks, zfs


def _fakes(tmp_path, altroot: str, datasets: list[tuple[str, str, str, str]]):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "mounts.log"
    listing = "".join("\t".join(row) + "\n" for row in datasets)
    (tmp_path / "list.txt").write_text(listing)
    scripts = {
        "zpool": f"#!/bin/sh\n[ \"$*\" = 'get -H -o value -- altroot rpool' ] || exit 2\necho '{altroot}'\n",
        "zfs": ("#!/bin/sh\ncase \"$*\" in\n"
                "'list -H -o name,mountpoint,canmount,mounted -r -t filesystem -- rpool/crypt') "
                f"cat {tmp_path / 'list.txt'};;\n*) echo \"unexpected zfs $*\" >&2; exit 2;;\nesac\n"),
        "mount": f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> {log}\n",
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return bin_dir, log


def _mount(tmp_path, root, altroot, datasets):
    bin_dir, log = _fakes(tmp_path, altroot, datasets)
    (cmd,), _ = run(zfs, zfs.mount_datasets, dataset="rpool/crypt", root=str(root), pool="rpool")
    done = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=30,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    return done, (log.read_text().splitlines() if log.exists() else [])


def _keystone(root):
    """zfs list of Keystone's datasets as ZFS shows them under altroot ``root``."""
    return [("rpool/crypt", "none", "off", "no"), ("rpool/crypt/system", str(root), "on", "no"),
            ("rpool/crypt/system/nix", f"{root}/nix", "on", "no"),
            ("rpool/crypt/system/var", f"{root}/var", "on", "no")]


def test_mounts_keystone_layout_under_altroot_root_first(tmp_path):
    root = tmp_path / "mnt"
    done, mounts = _mount(tmp_path, root, str(root), _keystone(root))
    assert done.returncode == 0, done.stderr
    assert mounts == [f"-t zfs -o zfsutil -- rpool/crypt/system {root}",
                      f"-t zfs -o zfsutil -- rpool/crypt/system/nix {root}/nix",
                      f"-t zfs -o zfsutil -- rpool/crypt/system/var {root}/var"]


def test_refuses_a_pool_imported_without_altroot_and_mounts_nothing(tmp_path):
    # zpool import -N rpool (no -R): ZFS reports the real mountpoints, "/" for the system.
    root = tmp_path / "mnt"
    rows = [("rpool/crypt", "none", "off", "no"), ("rpool/crypt/system", "/", "on", "no"),
            ("rpool/crypt/system/nix", "/nix", "on", "no")]
    done, mounts = _mount(tmp_path, root, "-", rows)
    assert done.returncode == 1 and mounts == []
    assert "refusing to mount: pool rpool is imported with altroot '-'" in done.stderr
    assert f"zpool import -N -R {root} rpool" in done.stderr


@pytest.mark.parametrize("bad", ["/etc", "{root}/../etc", "{root}2/x"])
def test_refuses_any_target_outside_root_before_mounting(tmp_path, bad):
    root = tmp_path / "mnt"
    rows = _keystone(root) + [("rpool/crypt/system/evil", bad.format(root=root), "on", "no")]
    done, mounts = _mount(tmp_path, root, str(root), rows)
    assert done.returncode == 1 and mounts == [], (done.stderr, mounts)
    assert "refusing to mount: target outside" in done.stderr and "rpool/crypt/system/evil" in done.stderr


def test_skips_off_none_and_mounted_and_mounts_legacy_without_zfsutil(tmp_path):
    root = tmp_path / "mnt"
    rows = [("rpool/crypt", "none", "off", "no"), ("rpool/crypt/root", "legacy", "on", "no"),
            ("rpool/crypt/home", "legacy", "noauto", "no"), ("rpool/crypt/off", f"{root}/off", "off", "no"),
            ("rpool/crypt/done", f"{root}/done", "on", "yes"), ("rpool/crypt/deep", f"{root}/a/b/c", "on", "no")]
    done, mounts = _mount(tmp_path, root, str(root), rows)
    assert done.returncode == 0, done.stderr
    assert mounts == [f"-t zfs -- rpool/crypt/root {root}", f"-t zfs -- rpool/crypt/home {root}/home",
                      f"-t zfs -o zfsutil -- rpool/crypt/deep {root}/a/b/c"]


def test_mount_datasets_refuses_root_slash():
    from pyinfra.api.exceptions import OperationValueError

    with pytest.raises(OperationValueError, match="never / itself"):
        run(zfs, zfs.mount_datasets, dataset="rpool/crypt", root="/")


def _NOT_IMPORTED(pool):  # noqa: N802 - the zfs.ImportedPools answer for a pool that is not imported
    return {"zfs.ImportedPools": {f"pool={pool}": {"imported": False, "pool": None, "pools": []}}}


def test_import_pool_with_altroot_and_hostile_name_is_quoted():
    (cmd,), _ = run(zfs, zfs.import_pool, facts=_NOT_IMPORTED("rpool"), pool="rpool", altroot="/mnt")
    assert cmd.endswith("else zpool import -N -R /mnt -- rpool ; fi")
    (cmd,), _ = run(zfs, zfs.import_pool, facts=_NOT_IMPORTED("x; touch /tmp/pwned"), pool="x; touch /tmp/pwned",
                    altroot="/mnt")
    assert "-- 'x; touch /tmp/pwned'" in cmd and "; touch /tmp/pwned;" not in cmd


def test_recovery_closes_the_credstore_when_it_runs(tmp_path):
    """close_after_recovery decides on the host (the credstore is opened earlier in the same run)."""
    (cmd,), noops = run(luks, luks.close_after_recovery, mapping="credstore")
    assert noops == []
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "log"
    (bin_dir / "umount").write_text(f"#!/bin/sh\necho \"umount $*\" >> {log}\n")
    (bin_dir / "cryptsetup").write_text(f"#!/bin/sh\necho \"cryptsetup $*\" >> {log}\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    # /proc/mounts never lists a fake mapping here: only the close runs
    done = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == ["cryptsetup status -- credstore", "cryptsetup close -- credstore"]
