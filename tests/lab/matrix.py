"""Helpers for the fault matrix (inject -> sweep -> fix --dry -> fix -> re-sweep).

Not tests themselves: the matrix test (one per fault, marked ``lab``) is to be
written once ``playbooks/sweep.py`` and ``playbooks/fix/<name>.py`` are final.
Contract assumed here (see docs/lab.md):
  pyinfra -y <inventory> playbooks/sweep.py --data report=<path>
      -> JSON {"hosts": [{"name": ..., "results": [{"check": id, "outcome": "pass|fail|..."}]}]}
  pyinfra -y <inventory> playbooks/fix/<name>.py [--dry | --data fix=true]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def pyinfra(inventory: Path, playbook: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pyinfra", "-y", str(inventory), str(REPO / playbook), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def sweep(host, tmp_path: Path) -> dict[str, str]:
    """check id -> outcome for the lab host (one host per inventory)."""
    report = tmp_path / f"sweep-{len(list(tmp_path.glob('sweep-*.json')))}.json"
    pyinfra(host.inventory_path, "playbooks/sweep.py", "--data", f"report={report}")
    data = json.loads(report.read_text())
    (h,) = data["hosts"]
    return {r["check"]: r["outcome"] for r in h["results"]}


def failing(results: dict[str, str]) -> set[str]:
    return {c for c, o in results.items() if o == "fail"}


def fix(host, name: str, dry: bool) -> subprocess.CompletedProcess:
    args = ["--dry"] if dry else ["--data", "fix=true"]
    return pyinfra(host.inventory_path, f"playbooks/fix/{name}.py", *args)


def guest_fingerprint(host) -> str:
    """A cheap 'did anything else change' probe to compare before/after --dry."""
    rc, out, _ = host.ssh("zpool list -H -o name,health 2>&1; zfs get -H -o name,value mounted,keystatus 2>&1;"
                          " cryptsetup status credstore 2>&1 | head -n 1; findmnt -rn -o TARGET,SOURCE;"
                          " systemctl list-units --failed --no-legend --plain; cat /proc/swaps;"
                          " nft list ruleset | md5sum; md5sum /root/.ssh/authorized_keys 2>&1",
                          control=bool(host.fault and host.fault.control))
    return out
