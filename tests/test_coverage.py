"""`keystone-checks coverage`: every section and cause of issue 3 is covered by the catalog."""

from __future__ import annotations

import subprocess
import sys

from keystone_checks import coverage


def test_coverage_runs_and_nothing_is_uncovered():
    assert coverage.uncovered() == []
    done = subprocess.run([sys.executable, "-m", "keystone_checks.coverage"], capture_output=True, text=True, timeout=120)
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
    done = subprocess.run([sys.executable, "-m", "keystone_checks.coverage", "--requirements", str(requirements)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "MISS     a cause no check names" in done.stdout
    assert "'Error: no such heading' is not a heading" in done.stdout
    assert "also: no check with id 'no-such-check'" in done.stdout


def test_guides_shipped_match_the_seeds():
    from pathlib import Path

    for document in ("troubleshooting-build-and-deploy.md", "troubleshooting-nixos-anywhere-vm-install.md"):
        seed = coverage.SEEDS / document
        shipped = Path(coverage.__file__).parent / "data" / "guides" / document
        if seed.is_file():
            assert shipped.read_text() == seed.read_text(), f"{shipped} is out of date: copy {seed} over it"
