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
    units = [p for p in (KS / "units").rglob("*") if p.is_file() and not p.name.startswith("lab-")]
    assert len(units) == 4, units
    for unit in units:
        assert "storage.nix" in unit.read_text(), unit


def test_lab_only_units_say_so():
    lab_units = [p for p in (KS / "units").rglob("lab-*") if p.is_file()]
    assert lab_units
    for unit in lab_units:
        assert unit.read_text().startswith("# Lab only"), unit


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
    # The whole log of one QEMU run: a healthy boot, a reset, the boot that stops.
    failed = (SERIAL / "ksboot-hostid-changed.log").read_text(errors="replace")
    assert ksboot.initrd_stop_reason(failed) == "Failed to start import-rpool-bare.service."
    assert "cannot import 'rpool': pool was previously in use from another system." in failed
    assert ksboot.loader_stop_reason(failed) is None  # a kernel started: not the loader's doing


def test_loader_stop_reason_from_a_real_serial_capture():
    serial = (SERIAL / "ksboot-initrd-missing.log").read_text(errors="replace")
    after_reset = serial[serial.rindex("BdsDxe: loading Boot0001"):]
    # The boot loader's own line, not the firmware's PXE attempts printed after it.
    assert ksboot.loader_stop_reason(after_reset) == "Error preparing initrd: Not Found"
    assert ksboot._FIRMWARE_GAVE_UP.search(after_reset)
    assert ksboot.initrd_stop_reason(serial) is None  # no initrd ran this time
    assert ksboot.loader_stop_reason(serial) is None  # the log's first boot started a kernel


def test_reboot_faults_say_what_the_catalog_should_catch():
    from keystone_checks.engine.catalog import load_catalog
    from keystone_checks.lab.reboot_faults import REBOOT_FAULTS

    ids = {c.id for c in load_catalog()}
    playbooks = Path(__file__).resolve().parents[1] / "playbooks"
    assert len({f.name for f in REBOOT_FAULTS}) == len(REBOOT_FAULTS)
    for f in REBOOT_FAULTS:
        assert bool(f.inject) != bool(f.inject_on_installer), f.name  # injected in exactly one place
        assert f.caught_before or f.gap, f"{f.name}: an empty expectation must say why (gap)"
        assert set(f.caught_before) | set(f.caught_after) | set(f.recovery_outcomes) <= ids, f.name
        for book in (f.before_playbook, f.recovery):
            assert book is None or (playbooks / book).is_file(), (f.name, book)
        assert not f.repaired or f.recovery, f"{f.name}: repaired without a recovery"
        assert f.stop is None or re.compile(f.stop)


def test_reboot_rows_render_in_their_own_table():
    from keystone_checks.lab import matrix_table

    row = {"kind": "reboot", "fault": "next-boot-hostid-changed", "zfs": "zfs21", "flavour": "entries",
           "before": ["next-boot-hostid-matches-pool"], "stop": "Failed to start import-rpool-bare.service.",
           "after": "unreachable", "after_caught": [], "after_error": "no SSH banner",
           "recovery": {"pool-exported-cleanly": "fixed"}, "repaired": True}
    text = matrix_table.render([row])
    section = text[text.index("## Next-boot faults"):]
    line = next(ln for ln in section.splitlines() if ln.startswith("| `next-boot-hostid-changed`"))
    assert "`next-boot-hostid-matches-pool`" in line and "stops: `Failed to start import-rpool-bare.service.`" in line
    assert line.endswith("| boot.py: `pool-exported-cleanly` fixed | yes |"), line
    assert "| `esp-emptied`: " in section and "| not run in this run (`pytest -m ksboot -k esp-emptied`" in section
    assert "import race" not in line
    # A harness reset past the import race stays in the row, not in the table CI compares.
    raced = matrix_table.render([{**row, "race_resets": ["cannot import 'rpool': one or more devices ..."]}])
    assert raced == text


class _ConsoleGuest:
    """Stands in for a UefiGuest in boot_outcome: its serial log is a real capture, cut at the
    stop, and a reset appends the next boot (``boots``); ssh answers once the last boot is shown."""

    def __init__(self, boots: list[str]):
        self.boots, self.shown, self.resets, self.race_resets = boots, 1, 0, []

    def alive(self):
        return True

    def serial(self):
        return "".join(self.boots[:self.shown])

    def reboot(self):
        self.resets += 1
        self.shown += 1

    def ssh_bytes(self, cmd, timeout):
        return (0 if self.shown == len(self.boots) and self.boots[-1] == "" else 255), b"", b""


def _stopped_boot(zfs_says: str) -> str:
    """The hostid capture's failing boot (after its reset), with ZFS's own refusal ``zfs_says``."""
    log = (SERIAL / "ksboot-hostid-changed.log").read_text(errors="replace")
    boot = log[log.rindex("BdsDxe: loading Boot0001"):]
    return boot.replace("pool was previously in use from another system.", zfs_says)


def test_the_import_race_is_reset_past_once_and_recorded():
    # libzfs zpool_standard_error, ENXIO: the message the race printed (docs/lab.md "import race").
    race = _stopped_boot("one or more devices is currently unavailable")
    g = _ConsoleGuest([race, ""])
    assert ksboot.boot_outcome(g, timeout=30) is None
    assert g.resets == 1 and g.race_resets == ["cannot import 'rpool': one or more devices is currently unavailable"]
    # Twice in a row: the second stop is reported, not hidden.
    g = _ConsoleGuest([race, race, ""])
    assert ksboot.boot_outcome(g, timeout=30) == "Failed to start import-rpool-bare.service."
    assert g.resets == 1


def test_the_import_before_the_disk_was_probed_is_the_race_too():
    # udev's coldplug slower than the device timeout (CI, 2026-12-02): the import ran before the disk
    # was probed; ZFS's own words for it (zpool_main.c).
    race = _stopped_boot("no such pool available")
    g = _ConsoleGuest([race, ""])
    assert ksboot.boot_outcome(g, timeout=30) is None
    assert g.resets == 1 and g.race_resets == ["cannot import 'rpool': no such pool available"]


def test_a_refused_import_that_is_not_the_race_is_the_stop():
    g = _ConsoleGuest([_stopped_boot("pool was previously in use from another system."), ""])
    assert ksboot.boot_outcome(g, timeout=30) == "Failed to start import-rpool-bare.service."
    assert g.resets == 0 and g.race_resets == []
