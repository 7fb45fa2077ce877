"""Guarantee: host data is checked by its grammar and range when it is loaded, and a bad value is a
clear error naming the host and the key, never a traceback and never an option or code later.

Pool and dataset rules follow OpenZFS module/zcommon/zfs_namecheck.c (pool_namecheck,
entity_namecheck) and lib/libzfs zpool_name_valid (reserved prefixes on create/import); mapping
names the device-mapper limits (DM_NAME_LEN 128, no '/'); paths must be absolute and normalised.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from kc_helpers import REPO

from keystone_checks.engine import hostdata
from keystone_checks.errors import HostDataError, KeystoneChecksError

BASE = {"role": "installer", "disk": "/dev/vda"}


def problem(key: str, value) -> str | None:
    try:
        hostdata.resolve("server1", {**BASE, key: value})
    except HostDataError as exc:
        assert str(exc).startswith(f"host server1: host data '{key}': "), exc
        assert len(str(exc)) < 600, "the message must not echo a huge value"
        return str(exc)
    return None


@pytest.mark.parametrize("name", ["rpool", "tank", "r", "my pool", "pool_1.a:b-c", "c", "cpool", "logs", "Mirror"])
def test_valid_pool_names(name):
    assert problem("pool", name) is None


@pytest.mark.parametrize("name, why", [
    ("-faN", "must begin with a letter"),  # would be `zpool import -faN`: force-import every pool
    ("rpool; touch /tmp/x", "character ';'"),
    ("$(id)", "character '$'"),
    ("`id`", "character '`'"),
    ("r'x", "character \"'\""),
    ("1pool", "must begin with a letter"),
    ("mirror", "reserved"), ("mirror2", "reserved"), ("raidz1", "reserved"), ("draid", "reserved"),
    ("spare", "reserved"), ("log", "reserved"), ("c0t0d0", "look like disks"),
    ("rpool/crypt", "character '/'"),
    ("p" * 240, "longer than 239"),
])
def test_invalid_pool_names(name, why):
    message = problem("pool", name)
    assert message and why in message and "ZFS pool name" in message, message


def test_empty_pool_means_no_pool():
    assert problem("pool", "") is None


@pytest.mark.parametrize("name, ok", [
    ("rpool/crypt", True), ("rpool", True), ("rpool/a b/c.d:e-f_g", True),
    ("rpool//crypt", False), ("rpool/crypt/", False), ("-rpool/crypt", False), ("rpool/cr$ypt", False),
    ("rpool/crypt@snap", False), ("rpool/" + "a" * 260, False),
])
def test_dataset_names(name, ok):
    assert (problem("crypt_dataset", name) is None) == ok


@pytest.mark.parametrize("name, ok", [
    ("credstore", True), ("luks-0b5c", True), ("cs';touch${IFS}x;'", True),  # dm admits it; quoting handles it
    ("-credstore", False), ("cred/store", False), (".", False), ("..", False), ("a b", False), ("", False),
    ("x" * 128, False),
])
def test_mapping_names(name, ok):
    assert (problem("credstore_name", name) is None) == ok


@pytest.mark.parametrize("key", ["disk", "credstore_device", "credstore_mount", "key_file", "boot_mount", "nix_path",
                                 "system_profile", "authorized_keys_file", "installer_marker"])
@pytest.mark.parametrize("value, ok", [
    ("/dev/disk/by-id/nvme-X_1", True), ("/etc/cred store", True),
    ("dev/vda", False), ("-rf", False), ("/etc/../root", False), ("/etc//x", False), ("/etc/x/", False),
    ("/etc/./x", False), ("/a\nb", False), ("/a\x00b", False),
])
def test_paths(key, value, ok):
    assert (problem(key, value) is None) == ok


@pytest.mark.parametrize("key, value, why", [
    ("max_load_per_cpu", float("nan"), "not a finite number"),
    ("max_load_per_cpu", float("inf"), "not a finite number"),
    ("max_load_per_cpu", -0.5, "out of range"),
    ("min_disk_bytes", -1, "out of range"),
    ("min_nix_free_bytes", -10, "out of range"),
    ("min_ram_bytes", -1, "out of range"),
    ("min_disk_bytes", 2**64, "out of range"),
    ("keep_generations", 0, "out of range"),
    ("ssh_port_expected", 0, "out of range"),
    ("ssh_port_expected", 70000, "out of range"),
])
def test_thresholds_finite_and_in_range(key, value, why):
    message = problem(key, value)
    assert message and why in message, message


def test_thresholds_in_range_pass():
    for key, value in (("max_load_per_cpu", 2.5), ("max_load_per_cpu", 3), ("min_disk_bytes", 0),
                       ("keep_generations", 5), ("ssh_port_expected", 2222)):
        assert problem(key, value) is None


@pytest.mark.parametrize("key", ["flake", "nixos_configuration", "authorized_key", "report", "pool", "disk"])
def test_control_characters_and_huge_values_name_the_key(key):
    assert "control character" in problem(key, "/x\x00y")
    assert "control character" in problem(key, "/x\ny")
    message = problem(key, "/" + "a" * 200_000)
    assert "200001 characters long; at most 4096" in message, message


@pytest.mark.parametrize("value, host, device", [
    ("server1:/dev/vda", "server1", "/dev/vda"),
    ("server2:/dev/vdb,server1:/dev/disk/by-path/pci-0000:00:1f.2-ata-1", "server1",
     "/dev/disk/by-path/pci-0000:00:1f.2-ata-1"),
    ("server2:/dev/vdb", "server1", None),
    ("/dev/vda", "server1", None),
])
def test_destructive_consent_names_host_and_device(value, host, device):
    assert hostdata.consented_device(value, host) == device


def test_destructive_consent_grammar():
    assert problem("destructive_device", "server1:/dev/vda") is None
    assert "does not name a host" in problem("destructive_device", "/dev/vda")
    assert "not an absolute path" in problem("destructive_device", "server1:vda") or \
        "does not name a host" in problem("destructive_device", "server1:vda")


@pytest.mark.parametrize("key, text, value", [
    ("max_load_per_cpu", "2.5", 2.5), ("max_load_per_cpu", "3", 3), ("fix", "true", True), ("fix", "False", False),
    ("pool", "123", "123"), ("min_disk_bytes", "1000", 1000), ("targets", '[{"name": "a"}]', [{"name": "a"}]),
    ("unknown_key", "7", 7), ("unknown_key", "text", "text"),
])
def test_cli_data_values_are_typed_by_key(key, text, value):
    assert hostdata.parse_cli_value(key, text) == value


def test_keystone_checks_run_accepts_a_float_threshold(tmp_path):
    """`keystone-checks run --data max_load_per_cpu=2.5` (was: "expected int or float, got str '2.5'")."""
    inventory = tmp_path / "inv.py"
    inventory.write_text("hosts = [('@local', {'role': 'installer', 'disk': '/dev/kc-none'})]\n")
    report = tmp_path / "r.json"
    done = subprocess.run([sys.executable, "-m", "keystone_checks.frontends.cli", "run", "sweep", "-i", str(inventory),
                           "--data", "max_load_per_cpu=2.5", "--report", f"json:{report}"],
                          capture_output=True, text=True, timeout=300, cwd=REPO, stdin=subprocess.DEVNULL)
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out[-2000:]
    (host,) = json.loads(report.read_text())["hosts"]
    assert "max_load_per_cpu" not in str(host.get("error")), host.get("error")
    assert host["results"], out[-2000:]


@pytest.mark.parametrize("key, text, value", [
    ("role", '["installer", "deployed"]', ["installer", "deployed"]), ("role", "installer", "installer"),
    ("fix", "true", True), ("report", "1.json", "1.json"),
])
def test_data_pairs_from_either_command_line(key, text, value):
    """One parser for `keystone-checks run --data` and the playbooks' `pyinfra --data` (re-read
    from the command line): a list key still takes JSON, a text key keeps its text."""
    assert hostdata.parse_data_pairs([f"{key}={text}"]) == {key: value}
    argv = ["pyinfra", "-y", "inv.py", "playbooks/sweep.py", "--data", f"{key}={text}", f"--data={key}={text}"]
    assert hostdata.data_options(argv) == [f"{key}={text}"] * 2


def test_data_pair_without_equals_names_the_option():
    with pytest.raises(KeystoneChecksError, match=r"--data fix: expected KEY=VALUE"):
        hostdata.parse_data_pairs(["fix"])


def test_pyinfra_data_is_typed_by_hostdata_too(tmp_path):
    """`pyinfra --data authorized_key=12345`: pyinfra's own parser makes it an int, hostdata's keeps
    the text the key declares (was: "host data 'authorized_key': expected str, got int 12345")."""
    from kc_helpers import read_report, run_pyinfra, write_inventory

    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed"}})
    report = tmp_path / "r.json"
    done = run_pyinfra(inventory, "sweep.py", "--data", "authorized_key=12345", "--data", "max_load_per_cpu=2.5",
                       "--data", f"report={report}",
                       env={"KEYSTONE_CHECKS_DIR": str(REPO / "tests" / "fixtures" / "e2e_checks")})
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-2000:]
    (host,) = read_report(report)["hosts"]
    assert host["status"] == "ok", host["error"]
