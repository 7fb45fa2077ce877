"""zfs.export_pool clears what is mounted on the pool's datasets but is not ZFS (the ESP at
/mnt/boot on the root dataset at /mnt), deepest first, and leaves everything else alone: run by a
real shell in a private mount namespace, with real tmpfs mounts standing in for the datasets and a
fake zfs/zpool/cryptsetup that answer like the real ones."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from op_runner import run

from keystone_checks.operations import zfs

pytestmark = pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) missing")


def test_export_unmounts_foreign_mounts_on_the_pool_then_exports(tmp_path):
    root, other = tmp_path / "mnt", tmp_path / "elsewhere"
    for d in (root, other):
        d.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "log"
    fakes = {
        "zpool": f"#!/bin/sh\necho \"zpool $*\" >> {log}\nexit 0\n",
        "cryptsetup": "#!/bin/sh\nexit 4\n",  # status: mapping inactive
        "zfs": f"#!/bin/sh\nprintf '%s\\tyes\\n' {root}\n",
        "timeout": "#!/bin/sh\nshift 3\nexec \"$@\"\n",
    }
    for name, body in fakes.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    (cmd,), _ = run(zfs, zfs.export_pool, facts={"zfs.ImportedPools": {"pool=rpool": {"imported": True, "pool": "rpool",
                                                                                 "pools": ["rpool"]}}}, pool="rpool")
    script = (f"mount -t tmpfs kcroot {root} && mkdir -p {root}/boot/efi && mount -t tmpfs kcesp {root}/boot && "
              f"mkdir -p {root}/boot/efi && mount -t tmpfs kcefi {root}/boot/efi && mount -t tmpfs kcother {other} && "
              f"PATH={bin_dir}:$PATH; export PATH; ( {cmd} ); echo \"rc=$?\"; "
              f"awk '$1 ~ /^kc/ {{ print $1 }}' /proc/mounts")
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True,
                          text=True, timeout=60)
    assert "rc=0" in done.stdout, done.stdout + done.stderr
    still = done.stdout.split("rc=0", 1)[1].split()
    assert still == ["kcroot", "kcother"], "the ESP (and what is on it) unmounted; the dataset and others kept"
    assert "zpool export -- rpool" in log.read_text()
