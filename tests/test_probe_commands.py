"""Probe commands whose shell logic branches, run by a real /bin/sh on this machine (the fixtures
test the parsers on captured output; these test that the commands print what the parsers expect)."""

from __future__ import annotations

import subprocess

from keystone_checks.facts.base import ProbeOutput
from keystone_checks.facts.boot import EspContents
from keystone_checks.facts.system import LoadAverage


def _run(fact, **args):
    done = subprocess.run(["sh", "-c", fact.command(**args)], capture_output=True, text=True, timeout=30)
    return fact.parse(ProbeOutput(done.returncode, done.stdout.splitlines(), done.stderr.splitlines()))


def test_load_lists_the_busiest_processes_only_at_or_above_the_limit():
    always = _run(LoadAverage(), top_per_cpu=0)
    never = _run(LoadAverage(), top_per_cpu=1e6)
    for value in (always, never):
        assert value["cpus"] >= 1 and value["load1"] >= 0
    assert always["top"], "at limit 0 every load is at the limit: the list must be there"
    assert never["top"] == [], "below the limit ps must not run"


def test_load_limit_is_a_number_never_shell_text():
    import pytest

    with pytest.raises(ValueError):
        LoadAverage().command(top_per_cpu="1; touch /tmp/kc-pwned-load")


def _esp(root, entries: dict[str, str], files: list[str]):
    for name, text in entries.items():
        path = root / "loader" / "entries" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for rel in files:
        path = root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return root


def test_esp_counts_and_broken_entries_on_a_real_tree(tmp_path):
    esp = _esp(tmp_path / "boot", {
        "nixos-generation-1.conf": "title NixOS\nlinux /EFI/nixos/k1.efi\ninitrd /EFI/nixos/i1.efi\n",
        "nixos-generation-2.conf": "title NixOS\nlinux /EFI/nixos/k2.efi\ninitrd /EFI/nixos/i2-gone.efi\n",
        "memtest.conf": "title memtest\nefi /EFI/memtest/memtest.efi\n",
    }, ["/EFI/nixos/k1.efi", "/EFI/nixos/i1.efi", "/EFI/nixos/k2.efi", "/EFI/memtest/memtest.efi",
        "/EFI/BOOT/BOOTX64.EFI", "/EFI/systemd/.hidden"])
    (esp / "loader" / "entries" / "notes.txt").write_text("not an entry\n")
    value = _run(EspContents(), path=str(esp))
    assert value["exists"] is True and value["mounted"] is False  # a directory, not a mount point
    assert value["efi_files"] == 6  # regular files at any depth, dot files too
    assert value["entries"] == 3  # *.conf only
    assert value["broken_entries"] == [{"entry": "nixos-generation-2.conf", "missing": ["/EFI/nixos/i2-gone.efi"]}]


def test_esp_without_entries_and_missing_esp(tmp_path):
    empty = _run(EspContents(), path=str(_esp(tmp_path / "boot", {}, ["/EFI/BOOT/BOOTX64.EFI"])))
    assert (empty["entries"], empty["efi_files"], empty["broken_entries"]) == (0, 1, [])
    missing = _run(EspContents(), path=str(tmp_path / "absent"))
    assert missing["exists"] is False
