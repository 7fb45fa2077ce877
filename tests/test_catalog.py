"""Check files: the shipped catalog is valid; every kind of broken file gets one clear message."""

import subprocess
import sys
from pathlib import Path

import pytest

from keystone_checks.engine.catalog import load_catalog, validate
from keystone_checks.errors import CatalogError

BROKEN = Path(__file__).parent / "fixtures" / "broken_checks"
REPO = Path(__file__).resolve().parent.parent

# file -> (line, substring of the message)
EXPECTED = {
    "yaml-syntax.yaml": (3, "YAML syntax error"),
    "unknown-key.yaml": (10, "'colour' was unexpected"),
    "wrong-type.yaml": (9, "severity: 3 is not one of"),
    "bad-regex.yaml": (9, "broken regex 'cannot export (rpool'"),
    "unknown-fact.yaml": (9, "unknown fact 'zfs.NoSuchFact'"),
    "unknown-operation.yaml": (13, "unknown operation 'zfs.explode'"),
    "invalid-expect-schema.yaml": (10, "expect.type: expect is not a valid JSON Schema"),
    "template-unknown-host-data.yaml": (9, "unknown host data ['nix_dir']"),
    "template-syntax.yaml": (9, "is not allowed: only plain placeholders"),
    "duplicate-yaml-key.yaml": (10, "duplicate key 'expect'"),
    "fact-wrong-argument.yaml": (9, "takes no argument 'dir'"),
    "unknown-dependency.yaml": (8, "unknown check id 'no-such-check'"),
    "bad-id.yaml": (1, "does not match"),
    "fix-steps-and-manual.yaml": (10, "either 'steps' with a 'risk', or 'manual'"),
    "not-a-mapping.yaml": (1, "must be a YAML mapping"),
    "applies-when-unknown-gather.yaml": (11, "applies_when.gather: 'layout' is not a name under this check's gather"),
    "applies-when-bad-schema.yaml": (13, "applies_when.schema.properties.boot_loader.type: not a valid JSON Schema"),
    "applies-when-unknown-host-data.yaml": (13, "unknown host data ['storage_kind']"),
    "applies-when-no-description.yaml": (11, "'description' is a required property"),
}


def test_shipped_catalog_is_valid():
    checks, problems = validate([REPO / "checks"])
    assert problems == []
    assert len({c.id for c in checks}) == len(checks) > 0


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_file_is_rejected_with_file_line_and_reason(name):
    checks, problems = validate([BROKEN / name])
    line, text = EXPECTED[name]
    assert problems, f"{name} was accepted"
    rendered = [str(p) for p in problems]
    assert any(f"{name}:{line}: " in p and text in p for p in rendered), rendered


def test_duplicate_ids_across_files_name_both_files():
    _, problems = validate([BROKEN / "duplicate-id-1.yaml", BROKEN / "duplicate-id-2.yaml"])
    (problem,) = [str(p) for p in problems]
    assert "duplicate-id-2.yaml:1: duplicate id 'dup-a' (first defined in" in problem and "duplicate-id-1.yaml" in problem


def test_dependency_cycle_is_reported():
    _, problems = validate([BROKEN / "cycle-a.yaml", BROKEN / "cycle-b.yaml"])
    assert any("depends_on cycle: cycle-a -> cycle-b -> cycle-a" in str(p) for p in problems)


def test_load_catalog_raises_one_error_listing_every_problem():
    with pytest.raises(CatalogError) as raised:
        load_catalog([BROKEN])
    assert len(raised.value.problems) >= len(EXPECTED)


def test_validate_cli_exits_nonzero_without_traceback():
    done = subprocess.run([sys.executable, "-m", "keystone_checks.frontends.cli", "validate", str(BROKEN)],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "bad-regex.yaml:9:" in done.stderr
    ok = subprocess.run([sys.executable, "-m", "keystone_checks.frontends.cli", "validate", str(REPO / "checks")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run([sys.executable, "-m", "keystone_checks.frontends.cli", "validate", "/nonexistent/checks"],
                             capture_output=True, text=True)
    assert missing.returncode == 1 and "no such file or directory" in missing.stderr


def test_catalog_cache_follows_file_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    checks_dir = tmp_path / "checks"
    checks_dir.mkdir()
    source = (REPO / "checks" / "zfs" / "zfs-module-loaded.yaml").read_text()
    (checks_dir / "a.yaml").write_text(source)
    assert load_catalog([checks_dir])[0].title == "ZFS kernel module is loaded"
    assert list((tmp_path / "cache").rglob("*.json")), "a validated catalog is cached"
    (checks_dir / "a.yaml").write_text(source.replace("ZFS kernel module is loaded", "Changed title here"))
    assert load_catalog([checks_dir])[0].title == "Changed title here"
    (checks_dir / "a.yaml").write_text(source.replace("severity: critical", "severity: maybe"))
    with pytest.raises(CatalogError):
        load_catalog([checks_dir])
