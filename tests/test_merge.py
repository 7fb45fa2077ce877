"""`keystone-checks merge`: shard reports of real sweeps (one real sshd, three host names in two
inventory groups) merged into the report one sweep of the whole fleet gives."""

from __future__ import annotations

import json

from test_cli import assert_valid_report, cli


def _inventory(path, sshd):
    data = {**sshd.host_data(), "role": "deployed", "pool": ""}
    hosts = {name: data for name in ("web-1", "web-2", "web-3")}
    path.write_text(
        "shard_0 = [" + ", ".join(f"({n!r}, {d!r})" for n, d in hosts.items() if n != "web-3") + "]\n"
        f"shard_1 = [('web-3', {data!r})]\n"
    )
    return path


def _sweep(inventory, out, *limit):
    args = ["run", "sweep", "-i", str(inventory), "--report", f"json:{out}"]
    for group in limit:
        args += ["--limit", group]
    done = cli(*args, timeout=300)
    assert done.returncode in (0, 1, 2, 3) and "Traceback" not in done.stderr, done.stderr
    return json.loads(out.read_text())


def _hosts(report):
    return {h["name"]: (h["status"], sorted((r["check"], r["outcome"]) for r in h["results"])) for h in report["hosts"]}


# Nagios precedence of the fleet status: critical, then unknown, then warning, then ok
WORST = [2, 3, 1, 0]


def test_merged_shards_equal_one_sweep_of_the_whole_fleet(tmp_path, sshd):
    inventory = _inventory(tmp_path / "fleet.py", sshd)
    whole = _sweep(inventory, tmp_path / "whole.json")
    a = tmp_path / "shard_0.json"
    b = tmp_path / "shard_1.json"
    shards = [_sweep(inventory, a, "shard_0"), _sweep(inventory, b, "shard_1")]

    merged_path = tmp_path / "fleet.json"
    done = cli("merge", str(a), str(b), "-i", str(inventory), "--report", f"json:{merged_path}",
               "--report", "nagios")
    merged = json.loads(merged_path.read_text())
    assert_valid_report(merged)
    assert done.stdout.startswith("KEYSTONE ")  # the Nagios line of the merged fleet
    # the hosts are the shards' hosts, unchanged, and the same hosts and checks one whole sweep has
    assert _hosts(merged) == {**_hosts(shards[0]), **_hosts(shards[1])}
    assert {n: [c for c, _ in r] for n, (_, r) in _hosts(merged).items()} == \
        {n: [c for c, _ in r] for n, (_, r) in _hosts(whole).items()}
    # the summary is recomputed, not copied: counts add up, the exit code is the worst shard's
    assert merged["summary"]["hosts"] == 3
    assert merged["summary"]["outcomes"] == {k: shards[0]["summary"]["outcomes"][k] + shards[1]["summary"]["outcomes"][k]
                                             for k in merged["summary"]["outcomes"]}
    worst = min((s["summary"]["exit_code"] for s in shards), key=WORST.index)
    assert done.returncode == merged["summary"]["exit_code"] == worst
    assert merged["shards"] == [str(a), str(b)]
    assert merged["phase"] == "sweep"


def test_a_shard_that_did_not_report_makes_its_hosts_unreachable(tmp_path, sshd):
    inventory = _inventory(tmp_path / "fleet.py", sshd)
    a = tmp_path / "shard_0.json"
    _sweep(inventory, a, "shard_0")
    out = tmp_path / "fleet.json"

    done = cli("merge", str(a), "-i", str(inventory), "--report", f"json:{out}")
    merged = json.loads(out.read_text())
    assert_valid_report(merged)
    (missing,) = [h for h in merged["hosts"] if h["name"] == "web-3"]
    assert missing["status"] == "unreachable" and "no shard report" in missing["error"]
    assert merged["summary"]["hosts"] == 3
    assert done.returncode == merged["summary"]["exit_code"] >= 2  # never healthier than unknown

    # without the inventory merge cannot know: only what the shards say
    done = cli("merge", str(a), "--report", f"json:{out}")
    assert [h["name"] for h in json.loads(out.read_text())["hosts"]] == ["web-1", "web-2"]
    # --limit narrows the expected hosts to a group
    done = cli("merge", str(a), "-i", str(inventory), "--limit", "shard_0", "--report", f"json:{out}")
    assert [h["status"] for h in json.loads(out.read_text())["hosts"]] == [h["status"] for h in json.loads(a.read_text())["hosts"]]


def test_bad_shards_are_refused_with_the_file_named(tmp_path, sshd):
    inventory = _inventory(tmp_path / "fleet.py", sshd)
    a = tmp_path / "shard_0.json"
    report = _sweep(inventory, a, "shard_0")

    twice = cli("merge", str(a), str(a))
    assert twice.returncode == 3 and "web-1 is in two shards" in twice.stderr and "Traceback" not in twice.stderr

    other_phase = tmp_path / "preflight.json"
    other_phase.write_text(json.dumps({**report, "phase": "preflight", "hosts": []}))
    mixed = cli("merge", str(a), str(other_phase))
    assert mixed.returncode == 3 and "different phases" in mixed.stderr

    junk = tmp_path / "junk.json"
    junk.write_text('{"hosts": "nope"}')
    bad = cli("merge", str(a), str(junk))
    assert bad.returncode == 3 and str(junk) in bad.stderr and "not a keystone-checks report" in bad.stderr

    missing = cli("merge", str(tmp_path / "absent.json"))
    assert missing.returncode == 3 and "absent.json: cannot read" in missing.stderr

    no_inventory = cli("merge", str(a), "--limit", "shard_0")
    assert no_inventory.returncode == 3 and "give -i INVENTORY" in no_inventory.stderr
