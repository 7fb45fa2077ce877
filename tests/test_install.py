"""Installing: a wheel carries the catalog and the playbooks, and works from any directory.

The wheel is built from a copy of this checkout (nothing is written into the repository) and
installed with --target next to this environment's dependencies, so the test needs no network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    junk = shutil.ignore_patterns(".git", ".venv", "bench", "build", "dist", "*.egg-info", "__pycache__",
                                  ".pytest_cache", ".hypothesis")

    def ignore(directory: str, names: list[str]) -> set[str]:
        # the run output directory reports/ at the root only: keystone_checks/reports/ is the writers' package
        return set(junk(directory, names)) | ({"reports"} if Path(directory) == REPO else set())

    shutil.copytree(REPO, src, ignore=ignore)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(work / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    wheels = list((work / "dist").glob("keystone_checks-*.whl"))
    assert len(wheels) == 1, wheels
    target = work / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           str(wheels[0])], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return target


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("KEYSTONE_CHECKS_DIR", None)
    return subprocess.run([sys.executable, "-m", "keystone_checks.frontends.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_wheel_carries_the_catalog_and_playbooks(installed):
    bundled = installed / "keystone_checks" / "_bundled"
    assert (installed / "keystone_checks" / "reports" / "html.py").is_file(), "the report writers' package"
    shipped = sorted(p.relative_to(bundled / "checks") for p in (bundled / "checks").rglob("*.yaml"))
    source = sorted(p.relative_to(REPO / "checks") for p in (REPO / "checks").rglob("*.yaml"))
    assert shipped == source
    assert (bundled / "playbooks" / "preflight.py").is_file()
    assert (bundled / "playbooks" / "fix").is_dir()


def test_installed_wheel_runs_from_any_directory(installed, tmp_path):
    where = run_installed(installed, tmp_path, "list", "--json")
    assert where.returncode == 0, where.stderr
    ids = {c["id"] for c in json.loads(where.stdout)}
    assert len(ids) == len(list((REPO / "checks").rglob("*.yaml")))
    # the package imported is the installed one, not this checkout
    origin = subprocess.run([sys.executable, "-c", "import keystone_checks; print(keystone_checks.__file__)"],
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(installed)},
                            capture_output=True, text=True, timeout=60)
    assert origin.stdout.strip().startswith(str(installed))
    report = tmp_path / "out.json"
    done = run_installed(installed, tmp_path, "run", "preflight", "-i", "@local", "--data", "role=controller",
                         "--report", f"json:{report}")
    assert done.returncode in (0, 1, 2, 3), done.stderr
    assert "Traceback" not in done.stderr
    data = json.loads(report.read_text())
    assert data["hosts"] and data["hosts"][0]["results"], data
    # a playbook file named relative to the bundled playbooks/ resolves too
    done = run_installed(installed, tmp_path, "run", "fix/nix-gc.py", "-i", "@local", "--data", "role=deployed",
                         "--fix", "--dry", "--report", f"json:{report}")
    assert "neither a phase" not in done.stderr, done.stderr


def test_missing_catalog_says_what_to_do(tmp_path):
    env = {**os.environ, "KEYSTONE_CHECKS_DIR": str(tmp_path / "nowhere")}
    done = subprocess.run([sys.executable, "-m", "keystone_checks.frontends.cli", "list"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "nowhere" in done.stderr and "Traceback" not in done.stderr


def test_version():
    from keystone_checks import __version__

    done = subprocess.run([sys.executable, "-m", "keystone_checks.frontends.cli", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"keystone-checks {__version__}"
