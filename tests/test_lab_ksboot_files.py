"""The Keystone-shaped guest's files say what upstream does (fast: no VM). The boot itself is
tested in tests/lab/test_lab_ksboot.py."""

from __future__ import annotations

import re
from pathlib import Path

from keystone_checks.lab import ksboot

SERIAL = Path(__file__).parent / "fixtures" / "serial"
KS = ksboot.KSBOOT_DIR


def test_bare_import_is_never_forced_and_checks_the_encryption_root():
    script = (KS / "import-rpool-bare").read_text()
    imports = re.findall(r"^\s*zpool import\b.*$", script, re.M)
    assert imports == ["zpool import -N -d /dev/disk/by-id rpool"], imports  # forceImportRoot = false
    assert 'if [ "$encroot" != rpool/crypt ]' in script
    assert re.search(r"trap cleanup EXIT", script) and "zpool export rpool" in script


def test_every_unit_names_the_upstream_it_follows():
    units = [p for p in (KS / "units").rglob("*") if p.is_file() and "lab-console" not in p.name]
    assert len(units) == 4, units
    for unit in units:
        assert "storage.nix" in unit.read_text(), unit


def test_credstore_is_closed_before_switch_root():
    dropin = (KS / "units" / "initrd-switch-root.target.d" / "keystone-credstore.conf").read_text()
    for key in ("Conflicts", "After"):
        assert re.search(rf"^{key}=etc-credstore\.mount systemd-cryptsetup@credstore\.service$", dropin, re.M)
    assert not (KS / "fstab").read_text().count("credstore")  # stage 2 never mounts it


def test_stop_reason_from_real_serial_captures():
    assert ksboot.initrd_stop_reason((SERIAL / "ksboot-healthy-boot.log").read_text(errors="replace")) is None
    # Before the initrd printed unit names (StatusUnitFormat=name), an 80-column console cut the
    # unit name: the reason is still the first failure line, as printed.
    failed = (SERIAL / "ksboot-key-file-removed-truncated.log").read_text(errors="replace")
    assert ksboot.initrd_stop_reason(failed) == "Failed to start rpool-load…pool/crypt key from the credstore."
    failed = (SERIAL / "ksboot-key-file-removed.log").read_text(errors="replace")
    assert ksboot.initrd_stop_reason(failed) == "Failed to start rpool-load-key.service."
