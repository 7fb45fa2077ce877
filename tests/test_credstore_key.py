"""The credstore-key probe (luks.CredstoreKey) as the batch runs it: a real /bin/sh, the
passphrase on the batch's stdin, stand-in cryptsetup/zfs/mount first on PATH
(tests/fake_luks_tools.py). What is asserted is the probe's own logic: what it opens, in which
mode, what it reports for each state of the credstore, that it closes what it opened (also one a
killed run left), and that it reads the passphrase only when it has to open. Real LUKS and ZFS:
the lab's Keystone-shaped guest (its healthy sweep and the credstore-key-file-removed fault)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from fake_luks_tools import fake_bin

from keystone_checks.errors import ProbeFailed
from keystone_checks.facts.base import ProbeOutput
from keystone_checks.facts.batch import Probe, new_marker, render_batch, split_batch
from keystone_checks.facts.luks import VERIFY_MAPPING, CredstoreKey

PASS = "correct horse battery"
ARGS = {"device": "/dev/zvol/rpool/credstore", "mapping": "credstore", "dataset": "rpool/crypt",
        "credstore_mount": "/etc/credstore"}


@pytest.fixture
def tools(tmp_path):
    bin_dir = fake_bin(tmp_path / "bin")
    (bin_dir / "passphrase").write_text(PASS)
    (bin_dir / "right-key").write_text("k" * 32)
    (bin_dir / "credstore").mkdir()
    (bin_dir / "credstore" / "zfs-sysroot.mount").write_text("k" * 32)
    return bin_dir


def run_probe(bin_dir: Path, stdin: str = PASS + "\n", **args) -> tuple[ProbeOutput, dict | None]:
    fact = CredstoreKey()
    probe = Probe("key", fact.command(**{**ARGS, **args}), requires=fact.requires, timeout=fact.timeout,
                  secret=fact.reads_secret)
    marker = new_marker()
    done = subprocess.run(["sh", "-c", render_batch([probe], marker)], input=stdin.encode(), capture_output=True,
                          timeout=60, env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    output = split_batch(done.stdout.decode().split("\n"), marker, 1)[0]
    return output, fact.parse(output)


def test_healthy_credstore_is_opened_read_only_verified_and_closed(tools):
    output, value = run_probe(tools)
    assert value == {"keylocation": "file:///etc/credstore/zfs-sysroot.mount", "in_credstore": True,
                     "key_path": "zfs-sysroot.mount", "source": "opened", "opened": True, "open_error": None,
                     "key_file_present": True, "key_verified": True, "verify_error": None, "closed_again": True}
    assert (tools / "stdin").read_text() == PASS
    assert (tools / "argv").read_text().split() == ["open", "--readonly", "--type", "luks",
                                                     "/dev/zvol/rpool/credstore", VERIFY_MAPPING]
    assert "ro," in (tools / "mount-argv").read_text().split()[1]
    zfs = (tools / "zfs-argv").read_text().split()
    assert zfs[:3] == ["load-key", "-n", "-L"] and zfs[3].endswith("/zfs-sysroot.mount") and zfs[4] == "rpool/crypt"
    assert not zfs[3].startswith("file:///etc/credstore"), "verified in its own mount, not the initrd's path"
    assert (tools / "closed").read_text().split() == [VERIFY_MAPPING]
    assert not (tools / f"state-{VERIFY_MAPPING}").exists()
    assert PASS not in "\n".join(output.stdout + output.stderr)


def test_removed_key_file_is_reported_and_the_mapping_still_closed(tools):
    (tools / "credstore" / "zfs-sysroot.mount").unlink()
    _, value = run_probe(tools)
    assert value["opened"] is True and value["key_file_present"] is False and value["key_verified"] is None
    assert value["closed_again"] is True and not (tools / f"state-{VERIFY_MAPPING}").exists()


def test_wrong_key_is_reported_with_zfs_own_message(tools):
    (tools / "credstore" / "zfs-sysroot.mount").write_text("x" * 32)
    _, value = run_probe(tools)
    assert value["key_file_present"] is True and value["key_verified"] is False
    assert value["verify_error"] == "Key load error: Incorrect key provided for 'rpool/crypt'."


def test_passphrase_that_does_not_open_it_is_an_answer_not_an_error(tools):
    _, value = run_probe(tools, stdin="not the passphrase\n")
    assert value["opened"] is False and value["open_error"] == "No key available with this passphrase."
    assert value["key_file_present"] is None and value["closed_again"] is None
    assert not (tools / "mount-argv").exists()


def test_an_open_credstore_is_read_through_its_own_mapping_and_left_open(tools):
    (tools / "state-credstore").touch()  # opened in stage 2 (a host that unlocks there, or by hand)
    _, value = run_probe(tools, stdin="")
    assert value["source"] == "mapping" and value["key_verified"] is True
    assert not (tools / "argv").exists(), "nothing opened, no passphrase needed"
    assert (tools / "state-credstore").exists() and not (tools / "closed").exists()
    assert (tools / "mount-argv").read_text().split()[-2] == "/dev/mapper/credstore"


def test_a_mapping_left_by_a_killed_run_is_closed_first(tools):
    (tools / f"state-{VERIFY_MAPPING}").touch()
    _, value = run_probe(tools)
    assert value["key_verified"] is True
    assert (tools / "closed").read_text().split() == [VERIFY_MAPPING, VERIFY_MAPPING]


@pytest.mark.parametrize("location", ["file:///etc/credstore/../../root/key", "file:///tmp/key", "prompt",
                                      "file:///etc/credstore-other/key", "file:///etc/credstore/./key"])
def test_a_keylocation_outside_the_credstore_opens_nothing(tools, location):
    (tools / "keylocation").write_text(location + "\n")
    _, value = run_probe(tools)
    assert value["in_credstore"] is False and value["opened"] is None
    assert not (tools / "argv").exists()


def test_no_passphrase_on_stdin_is_an_error_not_a_pass(tools):
    with pytest.raises(ProbeFailed) as info:
        run_probe(tools, stdin="")
    assert "did not reach the host" in str(info.value)


def test_hostile_arguments_stay_data(tools, tmp_path):
    canary = tmp_path / "pwned"
    hostile = {"device": f"/dev/x'; touch {canary}; '", "mapping": f"c$(touch {canary})",
               "dataset": f"rpool/`touch {canary}`", "credstore_mount": f"/etc/c\n touch {canary}"}
    (tools / "keylocation").write_text(f"file://{hostile['credstore_mount']}/k\n")
    run_probe(tools, **hostile)
    assert not canary.exists()
    assert hostile["device"] in (tools / "argv").read_text(), "the device reached cryptsetup as one argument"
