"""`keystone-checks coverage`: every section and cause of the guides is covered by the catalog."""

from __future__ import annotations

import subprocess
import sys

from keystone_checks.tools import coverage


def test_coverage_runs_and_nothing_is_uncovered():
    assert coverage.uncovered() == []
    done = subprocess.run([sys.executable, "-m", "keystone_checks.tools.coverage"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert "Configuration Validation Fails" in done.stdout and "checks: configuration-name-exists" in done.stdout
    assert "playbooks/fix/nix-gc.py" in done.stdout and "playbooks/fix/rollback.py" in done.stdout


def test_every_check_section_is_a_verbatim_guide_heading():
    for document in ("troubleshooting-build-and-deploy.md", "troubleshooting-nixos-anywhere-vm-install.md"):
        shipped = coverage.headings(coverage.guide_text(document, seeds=None))
        assert "Quick Diagnostic Checklist" in shipped or "Generation not appearing" in shipped


def test_uncovered_cause_is_reported(tmp_path):
    requirements = tmp_path / "coverage.yaml"
    requirements.write_text(
        "troubleshooting-build-and-deploy.md:\n"
        "  - section: Generation not appearing\n"
        "    causes:\n"
        "      - name: a cause no check names\n"
        "  - section: 'Error: no such heading'\n"
        "  - section: Slow deployment\n"
        "    also: [no-such-check]\n")
    done = subprocess.run([sys.executable, "-m", "keystone_checks.tools.coverage", "--requirements", str(requirements)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "MISS     a cause no check names" in done.stdout
    assert "'Error: no such heading' is not a heading" in done.stdout
    assert "also: no check with id 'no-such-check'" in done.stdout


def test_guides_shipped_match_the_seeds():
    from pathlib import Path

    for document in ("troubleshooting-build-and-deploy.md", "troubleshooting-nixos-anywhere-vm-install.md"):
        seed = coverage.SEEDS / document
        shipped = Path(coverage.__file__).parents[1] / "data" / "guides" / document
        if seed.is_file():
            assert shipped.read_text() == seed.read_text(), f"{shipped} is out of date: copy {seed} over it"


def test_upstream_behaviours_are_printed_with_their_checks():
    done = subprocess.run([sys.executable, "-m", "keystone_checks.tools.coverage"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert "Upstream behaviours (keystone_checks/data/upstream/*.yaml)" in done.stdout
    assert "ok   [v0.2+] lanzaboote-ukis:" in done.stdout
    assert "checks: next-boot-key-location" in done.stdout
    assert "gap  [v0.2+] tpm-pcr-unlock:" in done.stdout


def test_bad_upstream_entries_fail_coverage(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "- {id: names-a-ghost, behaviour: b, source: 'x/y#1', keystone: all, checks: [no-such-check]}\n"
        "- {id: says-nothing, behaviour: b, source: 'x/y#2', keystone: all}\n"
        "- {id: bad-version, behaviour: b, source: 'x/y#3', keystone: v9, checks: [pool-imported]}\n"
        "- {id: names-a-ghost, behaviour: b, source: 'x/y#4', keystone: all, uncovered: why}\n")
    (tmp_path / "broken.yaml").write_text("id: not-a-list\n")
    done = subprocess.run([sys.executable, "-m", "keystone_checks.tools.coverage", "--upstream", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout[-2000:]
    out = done.stdout
    assert "!! no check with id 'no-such-check'" in out
    assert "!! neither checks nor uncovered" in out
    assert "!! keystone must be one of v0.1, v0.2+, all" in out
    assert "!! duplicate id (also in mine.yaml)" in out
    assert "!! must be a YAML list of entries" in out
    assert "Traceback" not in done.stderr


def test_uncovered_lists_upstream_problems(tmp_path, monkeypatch):
    entries = coverage.check_upstream([], coverage.load_upstream())
    assert all(not e.problems for e in entries if not e.checks)  # uncovered entries are fine on their own
    assert any("no check with id" in p for e in entries for p in e.problems)  # an empty catalog covers nothing
