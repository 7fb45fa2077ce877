"""The scheduled-sweep units: systemd-analyze verify, the schedule, and the NixOS module's parse check.

These tools are required (`.ci/run` installs them): a missing tool fails the test, it never skips.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from kc_helpers import REPO

UNITS = REPO / "deploy" / "systemd"
SERVICE = UNITS / "keystone-checks-sweep.service"
TIMER = UNITS / "keystone-checks-sweep.timer"
MODULE = REPO / "deploy" / "nixos" / "keystone-checks.nix"


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} is not installed: apt-get install {package} (.ci/run installs it)")
    return path


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(path.read_text().replace("\\\n", " "))
    return parser


def verify(*paths: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("systemd-analyze", "systemd"), "verify", *map(str, paths)], capture_output=True,
                          text=True, timeout=60, cwd=cwd)


def test_systemd_analyze_verify_units(tmp_path):
    done = verify(SERVICE, TIMER, cwd=tmp_path)
    # verify exits 0 for settings it "ignores": any line naming our units is a problem too.
    ours = [l for l in (done.stdout + done.stderr).splitlines() if "keystone-checks-sweep" in l]
    assert done.returncode == 0 and not ours, done.stdout + done.stderr


def test_verify_is_not_vacuous(tmp_path):
    broken = tmp_path / "keystone-checks-sweep.timer"
    broken.write_text(TIMER.read_text().replace("OnCalendar=*:0/15", "OnCalendar=every quarter hour"))
    shutil.copy(SERVICE, tmp_path / SERVICE.name)
    done = verify(tmp_path / SERVICE.name, broken, cwd=tmp_path)
    assert done.returncode != 0 or "keystone-checks-sweep.timer" in done.stderr


def test_service_and_timer_semantics(tmp_path):
    service, timer = unit(SERVICE), unit(TIMER)
    s = service["Service"]
    assert s["Type"] == "oneshot"
    exec_start = s["ExecStart"]
    assert exec_start.startswith("/usr/bin/flock --nonblock")  # no overlap, also with manual runs
    assert "keystone-checks run sweep -i /etc/keystone-checks/inventory.py" in exec_start
    assert "--report prometheus:/var/lib/node_exporter/textfile_collector/keystone.prom" in exec_start
    assert "--report json:/var/lib/keystone-checks/sweep.json" in exec_start
    # findings are results; UNKNOWN (3: not looked at, report not written, crash, Ctrl-C) fails the unit
    assert set(s["SuccessExitStatus"].split()) == {"1", "2"}
    t = timer["Timer"]
    assert t["Persistent"] == "true" and t["RandomizedDelaySec"] and t["Unit"] == SERVICE.name
    assert timer["Install"]["WantedBy"] == "timers.target"
    done = subprocess.run([tool("systemd-analyze", "systemd"), "calendar", "--iterations=3", t["OnCalendar"]],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    minutes = [int(m) for m in re.findall(r"\d\d:(\d\d):00 UTC", done.stdout)]
    assert len(minutes) == 3 and all(m % 15 == 0 for m in minutes), done.stdout
    assert len({m for m in minutes}) == 3, "three consecutive quarter hours"


def test_nixos_module_parses_and_matches_units(tmp_path):
    nix = tool("nix-instantiate", "nix-bin")
    done = subprocess.run([nix, "--parse", str(MODULE)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    bad = tmp_path / "bad.nix"
    bad.write_text(MODULE.read_text().replace("in\n{", "in\n{{", 1))
    assert subprocess.run([nix, "--parse", str(bad)], capture_output=True, timeout=60).returncode != 0
    text = MODULE.read_text()
    for option in ("enable", "interval", "inventory", "reportDir"):
        assert re.search(rf"^\s*{option} = lib\.mk(Enable)?Option", text, re.M), option
    assert 'default = "*:0/15";' in text and "Persistent = true;" in text and 'Type = "oneshot";' in text
    assert "flock --nonblock" in text and "SuccessExitStatus = [ 1 2 ];" in text
