"""Guarantee: host data that reaches a shell is quoted. Hostile values ("/dev/vda; touch PWNED"
and friends) go through every fact command, and through full real pyinfra CLI runs (@local and a
real sshd; fix=true; --dry and real) of the real catalog and of test checks whose fixes are our
operations (close the credstore, export the pool, the guarded wipe); the PWNED file never appears.
"""

from __future__ import annotations

import inspect
import subprocess
import uuid
from pathlib import Path

import pytest


from keystone_checks import hostdata
from keystone_checks.facts import FACTS
from kc_helpers import Sshd, read_report, run_pyinfra, write_inventory

SAFETY_CHECKS = Path(__file__).parent / "fixtures" / "safety" / "checks"
NOT_SHELL = {"role", "report", "luks_passphrase_file", "luks_passphrase_env", "destructive_device"}


def payloads(pwned: Path) -> list[str]:
    p = str(pwned)
    return [f"/dev/kc-nodisk; touch {p}", f"rpool$(touch {p})", f"cs`touch {p}`", f"x' ; touch {p} ; '",
            f'x" ; touch {p} ; "', f"x\ntouch {p}\n", f"x && touch {p} #", f"-x | touch {p}", f"$(touch${{IFS}}{p})"]


def hostile_data(pwned: Path) -> dict:
    """Every string key a hostile value its grammar still admits (hostdata.check_value): paths may
    hold ``;``, ``$(...)``, backticks and quotes, so quoting must stop them; names (pool, dataset)
    admit none, and values the grammar refuses are refused at load (tests/test_hostdata_grammar.py)."""
    values = payloads(pwned)
    candidates = values + ["/" + v for v in values]
    data, i = {}, 0
    for key in hostdata.KEYS.values():
        if key.name in NOT_SHELL or str not in key.types:
            continue
        admitted = [v for v in candidates if hostdata.check_value(key, v) is None]
        if admitted:
            data[key.name] = admitted[i % len(admitted)]
            i += 1
    return data


def test_every_fact_command_quotes_every_argument(tmp_path):
    """Every fact in the registry (facts added later included), each string argument hostile, run by sh."""
    pwned = tmp_path / f"pwned-{uuid.uuid4().hex}"
    jobs = []
    for name, cls in sorted(FACTS.items()):
        params = [p for p in inspect.signature(cls.command).parameters.values() if p.name != "self"]
        for payload in payloads(pwned):
            try:
                command = str(cls().command(**{p.name: payload for p in params}))
            except Exception:  # noqa: BLE001 - a fact may refuse a non-string argument outright
                continue
            jobs.append((name, payload, command))
    built = {name for name, _, _ in jobs}
    unbuilt = [n for n in FACTS if n not in built and not any(
        p.annotation in (int, float, bool, "int", "float", "bool")
        for p in inspect.signature(FACTS[n].command).parameters.values())]
    assert not unbuilt, f"facts whose command refused every string argument: {unbuilt}"
    for start in range(0, len(jobs), 24):  # run in parallel batches: probes mostly wait
        batch = jobs[start:start + 24]
        procs = [subprocess.Popen(["timeout", "5", "/bin/sh", "-c", command], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _, _, command in batch]
        for proc in procs:
            proc.wait(timeout=30)
        if pwned.exists():
            culprits = [f"{n}.command({p!r}):\n{c}" for n, p, c in batch]
            pytest.fail("an injected command ran; one of:\n" + "\n".join(culprits))


@pytest.mark.sshd
def test_hostile_host_data_through_real_pyinfra_runs(tmp_path, request):
    pwned = tmp_path / f"pwned-{uuid.uuid4().hex}"
    server = Sshd(tmp_path / "sshd")
    server.root.mkdir()
    server.start()
    request.addfinalizer(server.stop)
    data = hostile_data(pwned)
    assert data["disk"].startswith("/dev/kc-nodisk; touch") or "touch" in data["disk"], data
    local = {**data, "role": ["installer", "deployed", "controller"], "allow_destructive": True,
             "destructive_device": f"@local:{data['disk']}"}
    remote = {**server.host_data(), **data, "role": ["installer", "deployed"], "allow_destructive": False,
              "destructive_device": f"sshd-host:{data['disk']}"}
    inventory = write_inventory(tmp_path / "inv.py", {"@local": local, "sshd-host": remote})

    def run(playbook, checks_dir, *extra, report):
        env = {"KEYSTONE_CHECKS_DIR": str(checks_dir)} if checks_dir else {}
        done = run_pyinfra(inventory, playbook, "--data", "fix=true", "--data", f"report={report}", *extra, env=env)
        out = done.stdout + done.stderr
        assert "Traceback" not in out, out[-3000:]
        assert not pwned.exists(), f"injected command ran during {playbook} {extra}:\n{out[-3000:]}"
        return read_report(report), out

    # 1. Dry run of our test checks: nothing runs; the plan lists the commands (disruptive and destructive).
    report, out = run("sweep.py", SAFETY_CHECKS, "--dry", report=tmp_path / "dry.json")
    assert report["dry_run"] is True
    hosts = {h["name"]: {r["check"]: r for r in h["results"]} for h in report["hosts"]}
    rollback = hosts["@local"]["safety-disruptive-rollback"]
    assert rollback["outcome"] == "would-fix" and rollback["fix"]["risk"] == "disruptive"
    assert rollback["fix"]["commands"] == ["nixos-rebuild switch --rollback"]
    wipe = hosts["@local"]["safety-disk-wiped"]
    assert wipe["outcome"] == "would-fix", wipe
    (script,) = wipe["fix"]["commands"]
    assert "refusing" in script and "wipefs -a" in script and "sgdisk --zap-all" in script
    refused = hosts["sshd-host"]["safety-disk-wiped"]
    assert refused["outcome"] == "fail" and "allow_destructive" in refused["fix"]["refused"], refused

    # 2. Real run (fix=true, consent given on both hosts): the guard refuses the hostile device on the host.
    remote["allow_destructive"] = True
    write_inventory(tmp_path / "inv.py", {"@local": local, "sshd-host": remote})
    report, out = run("sweep.py", SAFETY_CHECKS / "inject", report=tmp_path / "real.json")
    assert "refusing: device" in out and "does not exist" in out, out[-3000:]
    for host in report["hosts"]:
        results = {r["check"]: r for r in host["results"]}
        assert results["safety-disk-wiped"]["outcome"] == "fix-failed", results

    # 3. The real catalog, dry, every phase's worth of checks on both hosts.
    for playbook in ("sweep.py", "preflight.py", "recovery.py"):
        run(playbook, None, "--dry", report=tmp_path / f"catalog-{playbook}.json")
