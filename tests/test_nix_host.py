"""Host-side Nix checks and the nix fix playbooks under the real pyinfra CLI on @local (role deployed,
no ZFS pool: ``pool: ""``, so the pool checks the nix checks depend on do not apply):
a real system profile with two generations made by nix-env, and the garbage-collection fix as a dry run."""

from __future__ import annotations

import subprocess

from kc_helpers import outcomes, read_report, run_pyinfra, write_inventory
from nix_flakes import nix_env, require_nix


def _profile_with_generations(tmp_path, count: int):
    profile = tmp_path / "profiles" / "system"
    profile.parent.mkdir(parents=True)
    for i in range(count):
        content = tmp_path / f"system-{i}"
        content.mkdir()
        (content / "name").write_text(f"generation {i}\n")
        path = subprocess.run(["nix-store", "--add", str(content)], capture_output=True, text=True, check=True,
                              env={**nix_env(), "PATH": "/usr/bin:/bin"}).stdout.strip()
        subprocess.run(["nix-env", "-p", str(profile), "--set", path], check=True, capture_output=True,
                       env={**nix_env(), "PATH": "/usr/bin:/bin"})
    return profile


def test_recovery_generations_on_local(tmp_path):
    require_nix()
    two = _profile_with_generations(tmp_path / "two", 2)
    one = _profile_with_generations(tmp_path / "one", 1)
    for profile, expected in ((two, "pass"), (one, "fail")):
        report_path = tmp_path / f"recovery-{profile.parent.parent.name}.json"
        inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed", "pool": "", "system_profile": str(profile),
                                                                     "boot_mount": str(tmp_path / "no-esp")}})
        done = run_pyinfra(inventory, "recovery.py", "--data", f"report={report_path}", env=nix_env())
        assert "Traceback" not in done.stdout + done.stderr
        report = read_report(report_path)
        got = outcomes(report, "@local")
        assert got["nix-previous-generation-exists"] == expected
        assert got["boot-menu-offers-previous-generation"] == "fail"  # no ESP at boot_mount
        result = {r["check"]: r for r in report["hosts"][0]["results"]}["nix-previous-generation-exists"]
        assert result["evidence"]["generations"]["count"] == (2 if expected == "pass" else 1)
        if expected == "fail":
            assert got["services-rollback-if-failed"] == "skipped", "no rollback without a previous generation"


def test_nix_gc_fix_playbook_dry_run_lists_the_guide_commands(tmp_path):
    report_path = tmp_path / "gc.json"
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed", "pool": "", "nix_path": "/",
                                                                 "min_nix_free_bytes": 10**15}})
    done = run_pyinfra(inventory, "fix/nix-gc.py", "--dry", "--data", f"report={report_path}")
    assert "Traceback" not in done.stdout + done.stderr
    (result,) = [r for r in read_report(report_path)["hosts"][0]["results"] if r["check"] == "nix-store-free-space"]
    assert result["outcome"] == "would-fix", result
    assert result["fix"]["commands"] == ["nix-env --delete-generations +5 -p /nix/var/nix/profiles/system", "nix-collect-garbage"]


def test_rollback_fix_playbook_runs_without_crashing(tmp_path):
    report_path = tmp_path / "rollback.json"
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed", "pool": "", "system_profile": str(tmp_path / "none")}})
    done = run_pyinfra(inventory, "fix/rollback.py", "--dry", "--data", f"report={report_path}")
    assert "Traceback" not in done.stdout + done.stderr
    got = outcomes(read_report(report_path), "@local")
    # No generations at all: nothing to roll back to, so the rollback is not even considered.
    assert got["nix-previous-generation-exists"] == "fail" and got["services-rollback-if-failed"] == "skipped"
