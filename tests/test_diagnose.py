"""`keystone-checks diagnose`: ranking checks by their symptoms over the real catalog and the corpus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from keystone_checks import diagnose
from keystone_checks.catalog import load_catalog
from kc_helpers import REPO


CORPUS = Path(__file__).parent / "fixtures" / "diagnose" / "corpus.yaml"
# Measured on the corpus (docs/operator.md has the figures); a regression below these fails.
MIN_TOP1 = 0.9
MIN_TOP3 = 0.95


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keystone_checks.cli", "diagnose", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO, input=stdin if stdin is not None else "", env=os.environ)


def test_corpus_covers_every_check_with_symptoms():
    catalog = load_catalog()
    data = yaml.safe_load(CORPUS.read_text())
    expected = {i for case in data["cases"] for i in case["expect"]}
    missing = sorted(c.id for c in catalog if c.symptoms and c.id not in expected)
    assert not missing, f"add corpus cases (guide message + 2 variants) for: {missing}"
    per_check: dict[str, int] = {}
    for case in data["cases"]:
        for check_id in case["expect"]:
            per_check[check_id] = per_check.get(check_id, 0) + 1
    thin = sorted(c.id for c in catalog if c.symptoms and per_check.get(c.id, 0) < 3)
    assert not thin, f"fewer than 3 corpus cases (message + 2 variants) for: {thin}"


def test_accuracy_over_corpus():
    result = diagnose.evaluate_corpus(load_catalog(), CORPUS)
    assert result["cases"] >= 100
    assert result["top1"] >= MIN_TOP1, result["misses"]
    assert result["top3"] >= MIN_TOP3, result["misses"]
    assert result["fuzzy_cases"] >= 10 and result["fuzzy_top3"] >= 0.8, result["misses"]
    assert result["false_positives"] == [], "unrelated text must match nothing"


def test_variants_are_normalised():
    catalog = load_catalog()
    ansi = "\x1b[31;1mcannot export 'backup-pool': pool is busy\x1b[0m"
    assert diagnose.rank(ansi, catalog)[0].check.id in {"credstore-closed-before-export", "no-datasets-mounted-under-mnt",
                                                         "no-snapshot-holds"}
    assert diagnose.normalise("ssh: connect to host 10.1.2.3 port 2222 /dev/nvme0n1 took 12s") == \
        "ssh: connect to host <ip> port <n> <dev> took <n>"
    assert "<store>" in diagnose.normalise("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.drv")


def test_cli_text_json_stdin_and_no_match():
    done = cli("--json", "modprobe: FATAL: Module zfs not found in directory /lib/modules/6.6.30")
    assert done.returncode == 0, done.stderr
    matches = json.loads(done.stdout)["matches"]
    assert matches and {"id", "title", "score", "guide", "fix"} <= set(matches[0])
    assert matches[0]["id"] in {"zfs-module-available", "zfs-module-loaded"}
    assert [m["score"] for m in matches] == sorted((m["score"] for m in matches), reverse=True)
    assert matches[0]["guide"]["section"] == 'Issue: "ZFS modules not available"'

    log = "\n".join(["noise line %d: all ok" % i for i in range(200)]
                    + ["Mar 03 12:00:01 nixos disko[2211]: error: disk /dev/sdx not found"] + ["more noise"] * 50)
    done = cli("-", stdin=log)
    assert done.returncode == 0 and done.stdout.startswith("1. target-disk-present"), done.stdout
    assert "guide:" in done.stdout and "fix" in done.stdout

    done = cli("npm ERR! missing script: start")
    assert done.returncode == 1 and "No check in the catalog explains this text" in done.stdout
    done = cli("--json", "npm ERR! missing script: start")
    assert done.returncode == 1 and json.loads(done.stdout) == {"matches": []}
