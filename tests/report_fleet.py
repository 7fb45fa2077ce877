"""Synthetic fleets for the report writers: N hosts x M checks with every outcome, both kinds of
skip, hosts unreachable / timed out / in error, fixes of every risk and a failed fix's error text.

Built through the engine's own constructors (evaluate.result_for, report.HostReport, report.build),
so the report dict is the one a real run writes. Deterministic: a given size gives the same fleet.
A plain module imported by name, like kc_helpers.py.
"""

from __future__ import annotations

import random
import time
from types import SimpleNamespace

from keystone_checks.engine import outcome as report
from keystone_checks.engine.evaluate import Outcome, result_for

GUIDES = [
    {"document": "troubleshooting-build-and-deploy.md", "section": 'Error: "out of disk space"'},
    {"document": "troubleshooting-nixos-anywhere-vm-install.md", "section": "Issue: Cannot Access Encrypted Datasets",
     "cause": "Encryption key not loaded"},
]
FIXES = [
    None,
    {"risk": "safe", "summary": "Load the ZFS encryption keys (zfs load-key -a)", "steps": [{"op": "zfs.load_keys"}]},
    {"risk": "disruptive", "summary": "Restart sshd", "steps": [{"op": "services.restart"}],
     "playbook": "playbooks/fix/start-sshd.py"},
    {"risk": "destructive", "summary": "Repartition the disk", "steps": [{"op": "disks.wipe"}]},
    {"manual": "Boot the target from a freshly built Keystone ISO and rerun the preflight."},
]
LONG_FOUND = ("pools = [{\"health\": \"DEGRADED\", \"name\": \"rpool\", \"vdevs\": [{\"name\": "
              "\"/dev/disk/by-id/nvme-Samsung_SSD_980_PRO_2TB_S6B0NL0T123456-part2\", \"state\": \"FAULTED\"}]}]")


def checks(count: int) -> list[SimpleNamespace]:
    severities = ("critical", "warning", "info")
    out = []
    for i in range(count):
        base = ["zfs-module-loaded", "pool-imported", "credstore-closed", "esp-populated", "sshd-listening",
                "nix-store-space", "boot-entries-intact", "hostid-matches"][i % 8]
        out.append(SimpleNamespace(id=base if i < 8 else f"{base}-{i}", title=f"{base.replace('-', ' ').capitalize()} ({i})",
                                   severity=severities[i % 3 if i % 5 else 0], guide=GUIDES[i % 2], fix=FIXES[i % len(FIXES)],
                                   phases=["sweep"]))
    return out


def fleet(hosts: int, checks_count: int, seed: int = 7, names: list[str] | None = None) -> dict:
    rng = random.Random(seed)
    catalog = checks(checks_count)
    host_reports = []
    for h in range(hosts):
        name = names[h] if names and h < len(names) else f"web-{h + 1:03d}.fleet.example"
        if hosts > 3 and h % 17 == 5:
            host_reports.append(report.HostReport(name, roles=["deployed"], status="unreachable",
                                                  error="connection refused: the host is up but nothing listens on the SSH port"))
            continue
        if hosts > 3 and h % 23 == 7:
            host_reports.append(report.HostReport(name, roles=["deployed"], status="error",
                                                  error="host data 'disk': not an absolute path"))
            continue
        if hosts > 3 and h % 29 == 9:
            host_reports.append(report.HostReport(name, roles=["deployed"], status="timeout",
                                                  error="did not answer within host_timeout (pending: zpool status)"))
            continue
        results = []
        failed: set[str] = set()
        for i, check in enumerate(catalog):
            roll = rng.random()
            if i > 0 and catalog[i - 1].id in failed and i % 4 == 1:
                r = result_for(check, Outcome.SKIPPED, f"skipped because {catalog[i - 1].id} did not pass",
                               blocked_by=[catalog[i - 1].id])
            elif roll < 0.06:
                r = result_for(check, Outcome.SKIPPED, "applies to installer hosts, this host is deployed", role_skipped=True)
            elif roll < 0.16 or (i == 0 and h % 3 != 2):
                r = result_for(check, Outcome.FAIL, f"expected every pool ONLINE, found {LONG_FOUND}",
                               expected=["every pool ONLINE"], found=[LONG_FOUND])
                failed.add(check.id)
            elif roll < 0.19:
                r = result_for(check, Outcome.ERROR, "cannot evaluate: zpool: command not found")
            elif roll < 0.21 and check.fix and "steps" in check.fix:
                r = result_for(check, Outcome.FIX_FAILED, "still failing after fix: expected key loaded, found keystatus = unavailable")
                r.fix = {"risk": check.fix["risk"], "summary": check.fix["summary"], "commands": ["zfs load-key -a"],
                         "error": "Key load error: Failed to open key material file: No such file or directory"}
                failed.add(check.id)
            else:
                r = result_for(check, Outcome.PASS, "ok")
            results.append(r)
        host_reports.append(report.HostReport(name, roles=["deployed"], results=results, duration_s=0.4))
    now = time.time()
    return report.build("sweep", host_reports, now - 3.5, now, dry_run=False, fix_requested=False)
