"""Boot checks follow the boot loader, and "will the next boot come up?".

Real pyinfra CLI runs on @local inside a private mount namespace (``unshare -m``): the ESP is a
real tmpfs mount holding a tree laid out as systemd-boot or lanzaboote writes it (the layouts of
tests/fixtures/gen_boot_fixtures.py), the system profile real ``system-N-link`` symlinks. The
checks that need ZFS are judged on fixtures of the real output formats (this machine has no ZFS).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kc_helpers import REPO, read_report, write_inventory

from keystone_checks.engine import hostdata
from keystone_checks.engine.catalog import validate
from keystone_checks.engine.evaluate import Outcome, evaluate
from keystone_checks.facts import FACTS
from keystone_checks.facts.base import ProbeOutput

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import gen_boot_fixtures as layouts  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "facts"
needs_unshare = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                   reason="needs root and unshare for a private tmpfs ESP")


def _tree(root: Path, files: dict) -> None:
    for rel, content in files.items():
        path = root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def _profile(directory: Path, generation: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(1, generation + 1):
        (directory / f"system-{n}-link").symlink_to(f"/nix/store/{n:032d}-nixos-system-keystone-24.11")
    (directory / "system").symlink_to(f"system-{generation}-link")
    return directory / "system"


def run_with_esp(tmp_path: Path, playbook: str, files: dict, data: dict, size: str = "16m") -> dict:
    """pyinfra -y INV playbooks/PLAYBOOK in a private mount namespace with a tmpfs ESP holding
    ``files``; returns {check id: result}."""
    esp = tmp_path / "esp"
    esp.mkdir()
    staged = tmp_path / "staged"
    _tree(staged, files)
    report = tmp_path / "report.json"
    # The ESP is what these runs judge. On a ZFS host the profile (/nix) sits on the crypt datasets,
    # which next-boot-generation-on-esp waits for; this machine has no pool, so the host is pinned
    # as Keystone's ext4 + LUKS layout (an ESP like any other, no datasets to wait for).
    data = {**data, "layout": {"storage": "ext4-luks", **data.get("layout", {})}}
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed", "disk": "/dev/kc-absent",
                                                                 "boot_mount": str(esp), **data}})
    script = Path(sys.executable).parent / "pyinfra"
    launcher = str(script) if script.exists() else f"{sys.executable} -m pyinfra"
    shell = (f"mount -t tmpfs -o size={size} kc-esp {esp} && cp -a {staged}/. {esp}/ && "
             f"{launcher} -y {inventory} {REPO / 'playbooks' / playbook} --data report={report}")
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", shell], capture_output=True,
                          text=True, timeout=180, cwd=REPO, stdin=subprocess.DEVNULL)
    assert "Traceback" not in done.stdout + done.stderr, (done.stdout + done.stderr)[-3000:]
    (host,) = read_report(report)["hosts"]
    assert host["status"] == "ok", host["error"]
    return {r["check"]: r for r in host["results"]}


LANZA_CURRENT = {k: v for k, v in layouts.LANZABOOTE.items()}
UKI_2 = next(k for k in layouts.LANZABOOTE if "generation-2-" in k and "specialisation" not in k)


@needs_unshare
def test_lanzaboote_esp_passes_the_esp_checks_and_the_next_boot(tmp_path):
    results = run_with_esp(tmp_path, "next-boot.py", LANZA_CURRENT,
                           {"system_profile": str(_profile(tmp_path / "profiles", 2)),
                            "disks": ["/dev/kc-absent-a", "/dev/kc-absent-b"]})
    assert results["esp-populated"]["outcome"] == "pass", results["esp-populated"]
    assert results["next-boot-generation-on-esp"]["outcome"] == "pass", results["next-boot-generation-on-esp"]
    assert results["next-boot-generation-on-esp"]["evidence"]["next"]["entry"] == UKI_2.rsplit("/", 1)[-1]
    assert results["esp-room-for-next-generation"]["outcome"] == "pass"
    assert results["all-disks-present"]["outcome"] == "fail"
    assert "/dev/kc-absent-a" in results["all-disks-present"]["message"]
    # no ZFS here: never a pass, always a reason
    for check_id in ("next-boot-hostid-matches-pool", "next-boot-key-location", "root-dataset-mounted"):
        assert results[check_id]["outcome"] in ("skipped", "error") and results[check_id]["message"], results[check_id]


@needs_unshare
def test_empty_uki_breaks_boot_entries_intact_on_lanzaboote(tmp_path):
    files = dict(LANZA_CURRENT)
    files[UKI_2] = b""
    results = run_with_esp(tmp_path, "boot.py", files, {})
    assert results["esp-populated"]["outcome"] == "pass", results["esp-populated"]
    intact = results["boot-entries-intact"]
    assert intact["outcome"] == "fail", intact
    assert "every UKI under EFI/Linux/ non-empty" in intact["message"] and UKI_2.rsplit("/", 1)[-1] in intact["message"]


@needs_unshare
def test_systemd_boot_missing_initrd_and_profile_ahead_of_the_esp(tmp_path):
    files = {k: v for k, v in layouts.SYSTEMD_BOOT.items() if k != layouts.INITRD}
    results = run_with_esp(tmp_path, "next-boot.py", files, {"system_profile": str(_profile(tmp_path / "p", 3))})
    assert results["esp-populated"]["outcome"] == "pass", results["esp-populated"]
    nxt = results["next-boot-generation-on-esp"]
    assert nxt["outcome"] == "fail" and "nixos-generation-N.conf" in nxt["message"], nxt  # generation 3 has no entry
    assert nxt["evidence"]["next"]["generation"] == 3


@needs_unshare
def test_full_esp_fails_room_for_next_generation(tmp_path):
    files = dict(layouts.SYSTEMD_BOOT)
    files["/EFI/filler.bin"] = b"F" * (210 * 1024)  # a 300 KiB ESP: under 30 KiB left, a generation needs 42 000 B
    results = run_with_esp(tmp_path, "next-boot.py", files, {"system_profile": str(_profile(tmp_path / "p", 2))},
                           size="300k")
    room = results["esp-room-for-next-generation"]
    assert room["outcome"] == "fail", room
    assert room["evidence"]["next"]["needed_bytes"] == 42000 > room["evidence"]["next"]["free_bytes"]
    assert results["next-boot-generation-on-esp"]["outcome"] == "pass"


@needs_unshare
def test_an_esp_without_the_boot_loader_binary_fails_esp_populated(tmp_path):
    """Entries, kernels and initrds all there, systemd-boot itself gone (or truncated): the firmware
    has nothing to start, whatever else EFI/ holds."""
    files = {k: v for k, v in layouts.SYSTEMD_BOOT.items() if not k.lower().startswith("/efi/systemd/")}
    files["/EFI/BOOT/BOOTX64.EFI"] = b""
    results = run_with_esp(tmp_path, "boot.py", files, {})
    populated = results["esp-populated"]
    assert populated["outcome"] == "fail", populated
    assert "EFI/systemd/systemd-boot" in populated["message"]
    assert populated["evidence"]["esp"]["efi_files"] == 3 and populated["evidence"]["esp"]["boot_loaders"] == []
    assert results["boot-entries-intact"]["outcome"] == "skipped"  # it waits for esp-populated


@needs_unshare
def test_pinned_boot_loader_decides_what_the_esp_must_hold(tmp_path):
    """A systemd-boot ESP judged as lanzaboote (host data layout.boot_loader) misses its UKIs."""
    results = run_with_esp(tmp_path, "boot.py", dict(layouts.SYSTEMD_BOOT), {"layout": {"boot_loader": "lanzaboote"}})
    assert results["esp-populated"]["outcome"] == "fail"
    assert "lanzaboote UKI" in results["esp-populated"]["message"]


# -- checks that need ZFS: judged on the fixtures of the real output formats -----------------------

CATALOG = {c.id: c for c in validate([REPO / "checks"])[0]}
CONTEXT = hostdata.resolve("h", {"role": "deployed"})


def _fact(fact: str, case: str):
    data = yaml.safe_load((FIXTURES / fact / f"{case}.yaml").read_text())
    return FACTS[fact]().parse(ProbeOutput(data["exit_code"], data["output"].splitlines(), (data.get("stderr") or "").splitlines()))


@pytest.mark.parametrize("check_id, gather, fact, case, outcome, words", [
    ("next-boot-hostid-matches-pool", "hostids", "zfs.HostIds", "matches", "pass", ""),
    ("next-boot-hostid-matches-pool", "hostids", "zfs.HostIds", "next-boot-changed", "fail", "equal to the pool label's hostid"),
    ("next-boot-hostid-matches-pool", "hostids", "zfs.HostIds", "no-profile-hostid-exported", "pass", ""),
    ("next-boot-key-location", "key", "zfs.KeySource", "keystone-credstore", "pass", ""),
    ("next-boot-key-location", "key", "zfs.KeySource", "key-under-tmp", "fail", "not a file under /tmp"),
    ("next-boot-key-location", "key", "zfs.KeySource", "prompt", "fail", "inside credstore_mount"),
    ("next-boot-key-location", "key", "zfs.KeySource", "outside-credstore", "fail", "inside credstore_mount"),
    ("next-boot-key-location", "key", "zfs.KeySource", "missing-dataset", "fail", "crypt_dataset exists"),
    ("root-dataset-mounted", "root", "system.RootMount", "keystone-zfs-root", "pass", ""),
    ("root-dataset-mounted", "root", "system.RootMount", "tmpfs-fallback-root", "fail", "crypt_dataset/system"),
    ("no-swap-on-pool-zvol", "swap", "disks.SwapHolders", "swap-on-zvol-and-partition", "fail", "/dev/dm-0"),
    ("no-swap-on-pool-zvol", "swap", "disks.SwapHolders", "ci-no-swap", "pass", ""),
    ("installer-booted-from-iso", "live", "boot.LiveMedia", "installer-variant", "pass", ""),
    ("installer-booted-from-iso", "live", "boot.LiveMedia", "installed-variant", "fail", "VARIANT_ID=installer"),
])
def test_next_boot_checks_on_real_output_formats(check_id, gather, fact, case, outcome, words):
    layout = {"storage": "zfs", "boot_loader": "systemd-boot"}
    result = evaluate(CATALOG[check_id], {gather: _fact(fact, case), "layout": layout}, CONTEXT)
    assert result.outcome == Outcome(outcome), result.message
    assert words in result.message


def test_root_check_follows_the_ext4_layout():
    check = CATALOG["root-dataset-mounted"]
    ext4 = _fact("system.RootMount", "ext4-cryptroot")
    assert evaluate(check, {"root": ext4, "layout": {"storage": "ext4-luks"}}, CONTEXT).outcome == Outcome.PASS
    assert evaluate(check, {"root": ext4, "layout": {"storage": "zfs"}}, CONTEXT).outcome == Outcome.FAIL


def test_swap_blocking_names_only_swap_on_a_pool_zvol():
    """``blocking`` (what zfs.swapoff_pool_zvols turns off) holds dm-0 (dm-crypt over the zvol
    rpool/swap), not dm-1 (a partition of the pool's disk, which does not hold the pool open)."""
    blocking = _fact("disks.SwapHolders", "swap-on-zvol-and-partition")["blocking"]
    assert [b.rsplit("/", 1)[-1] for b in blocking] == ["dm-0"]


def test_manual_fix_text_names_this_hosts_pool(tmp_path):
    """A failing check's manual remedy is shown with the host's own values, not template text."""
    from kc_helpers import run_pyinfra

    report = tmp_path / "r.json"
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {
        "role": "deployed", "disk": "/dev/kc-absent", "pool": "tank", "disks": ["/dev/disk/by-id/kc-absent-a"]}})
    done = run_pyinfra(inventory, "next-boot.py", "--data", "fix=true", "--data", f"report={report}")
    assert "Traceback" not in done.stdout + done.stderr
    (host,) = read_report(report)["hosts"]
    disks = next(r for r in host["results"] if r["check"] == "all-disks-present")
    assert disks["outcome"] == "fail"
    assert "zpool replace tank OLD NEW" in disks["fix"]["manual"] and "{{" not in disks["fix"]["manual"]


@pytest.mark.parametrize("case, outcome", [
    # The same installer reset without `zpool export` and booted again: `zpool import` shows no
    # warning (its own hostid), byte for byte what a cleanly exported pool shows; the label says active.
    ("real-ksboot-installer-own-active", "fail"),
    ("real-ksboot-installer-exported", "pass"),
])
def test_pool_exported_cleanly_reads_the_label_not_only_zpool_import(case, outcome):
    context = hostdata.resolve("h", {"role": "installer", "pool": "rpool"})
    importable = "real-ksboot-installer-own-active"  # identical output in both states (fixture source)
    result = evaluate(CATALOG["pool-exported-cleanly"],
                      {"importable": _fact("zfs.ImportablePools", importable), "labels": _fact("zfs.PoolLabels", case)},
                      context)
    assert result.outcome == Outcome(outcome), result.message
    if outcome == "fail":
        assert "labels.active" in result.message and "exported" in result.message
