"""Host-side fix operations: idempotence (no-op when the fact says done), refusals (zpool import -f
without the opt-in), quoting, and the commands they queue. Facts are answered by a fake host."""

from pathlib import Path

import pytest
import yaml

from keystone_checks.operations import boot, firewall, systemd, zfs

FIXTURES = Path(__file__).parent / "fixtures" / "facts"


class FakeHost:
    def __init__(self, answers=None):
        self.answers = answers or {}
        self.noops = []

    def get_fact(self, cls, *args, **kwargs):
        key = args[0] if args else cls.__name__
        for pattern, value in self.answers.items():
            if pattern in key:
                return value
        return ""

    def noop(self, message):
        self.noops.append(message)


def run(module, op, answers=None, **kwargs):
    fake = FakeHost(answers)
    saved = module.host
    module.host = fake
    try:
        return list(op._inner(**kwargs)), fake.noops
    finally:
        module.host = saved


def test_import_pool_refuses_force_without_opt_in():
    cmds, _ = run(zfs, zfs.import_pool, pool="rpool", allow_force=False)
    assert "zpool import -f -N" not in cmds[0] and "refusing" in cmds[0] and "zpool import -N -- rpool" in cmds[0]


def test_import_pool_forces_only_with_opt_in_and_noops_when_imported():
    cmds, _ = run(zfs, zfs.import_pool, pool="rpool", allow_force=True)
    assert "zpool import -f -N -- rpool" in cmds[0]
    cmds, noops = run(zfs, zfs.import_pool, {"zpool list": "rpool"}, pool="rpool", allow_force=True)
    assert cmds == [] and noops


@pytest.mark.parametrize("allow", [False, "true", 1, None])
def test_force_import_scrub_export_refuses_without_explicit_true(allow):
    cmds, _ = run(zfs, zfs.force_import_scrub_export, pool="rpool", allow_force=allow)
    assert len(cmds) == 1 and "refusing" in cmds[0] and "exit 1" in cmds[0]


def test_force_import_scrub_export_sequence():
    cmds, _ = run(zfs, zfs.force_import_scrub_export, pool="rpool", allow_force=True)
    assert "zpool import -f -N rpool" in cmds[0] and "zpool scrub rpool" in cmds[1] and "zpool export rpool" in cmds[2]


def test_stop_scrub_noop_and_stop():
    assert run(zfs, zfs.stop_scrub, pool="rpool")[0] == []
    cmds, _ = run(zfs, zfs.stop_scrub, {"scan: scrub": "  scan: scrub in progress since x"}, pool="rpool")
    assert cmds == ["zpool scrub -s rpool"]


def test_load_key_uses_keylocation_never_prints_key_and_quotes():
    cmds, _ = run(zfs, zfs.load_key, {"keylocation": "file:///etc/credstore/k k"}, dataset="rpool/crypt; rm -rf /")
    assert "zfs load-key -L 'file:///etc/credstore/k k' 'rpool/crypt; rm -rf /'" in cmds[0]
    assert "cat " not in cmds[0]
    cmds, _ = run(zfs, zfs.load_key, {"keylocation": "prompt"}, dataset="rpool/crypt", key_file="/etc/credstore/key")
    assert "file:///etc/credstore/key" in cmds[0]
    assert run(zfs, zfs.load_key, {"keystatus": "available"}, dataset="rpool/crypt")[0] == []


def test_start_service_accepts_either_unit_name():
    cmds, _ = run(systemd, systemd.start_service, units="sshd ssh")
    assert "for u in sshd ssh" in cmds[0] and "systemctl start" in cmds[0]
    assert run(systemd, systemd.start_service, {"is-active": "ssh"}, units="sshd ssh")[0] == []


def fw_output(case):
    return yaml.safe_load((FIXTURES / "firewall.InputFirewall" / f"{case}.yaml").read_text())["output"]


@pytest.mark.parametrize("case, expected", [
    ("nixos-nftables-no22", ["nft -- insert rule inet nixos-fw input tcp dport 22 accept"]),
    ("nft-drop-before-accept", ["nft -- insert rule inet filter input tcp dport 22 accept"]),
    ("nixos-iptables-nft-no22", ["iptables -w -I INPUT 1 -p tcp --dport 22 -j ACCEPT",
                                 "ip6tables -w -I INPUT 1 -p tcp --dport 22 -j ACCEPT"]),
    ("nixos-iptables-nft-drop-before", ["iptables -w -I INPUT 1 -p tcp --dport 22 -j ACCEPT"]),
])
def test_allow_tcp_port_follows_the_backend(case, expected):
    cmds, _ = run(firewall, firewall.allow_tcp_port, {"port 22": fw_output(case)}, port=22)
    assert cmds == expected


@pytest.mark.parametrize("case", ["nixos-nftables-22", "nixos-iptables-nft-22", "nixos-iptables-legacy-22"])
def test_allow_tcp_port_is_a_noop_when_admitted(case):
    cmds, noops = run(firewall, firewall.allow_tcp_port, {"port 22": fw_output(case)}, port=22)
    assert cmds == [] and noops


@pytest.mark.parametrize("case, why", [("nixos-iptables-nft-src", "allowed only from 10.0.0.0/8"),
                                       ("iptables-legacy-recent-unknown", "recent"),
                                       ("not-root", "Permission denied")])
def test_allow_tcp_port_refuses_restricted_or_unreadable_rules(case, why):
    cmds, _ = run(firewall, firewall.allow_tcp_port, {"port 22": fw_output(case)}, port=22)
    assert len(cmds) == 1 and "refusing" in cmds[0] and why in cmds[0] and cmds[0].endswith("exit 1")


def test_disk_release_ops_quote_the_disk():
    cmds, _ = run(boot, boot.release_disk_mounts, {"lsblk": "/mnt/boot"}, path="/dev/disk/by-id/x y")
    assert "readlink -f '/dev/disk/by-id/x y'" in cmds[0]
    assert run(boot, boot.swapoff_disk, path="/dev/vda")[0] == []


FAKE_SYSTEMCTL = """#!/bin/sh
# Fake systemctl for a NixOS host with services.openssh.startWhenNeeded: only sshd.socket and
# sshd@.service exist (nixpkgs sshd.nix); logs every call.
echo "$*" >> "$KC_LOG"
[ "$1" = "--" ] && shift
case "$1" in
  cat) shift; [ "$1" = "--" ] && shift; case "$1" in sshd.socket|sshd@.service) exit 0;; *) echo "No files found for $1." >&2; exit 1;; esac;;
  start) shift; [ "$1" = "--" ] && shift; case "$1" in sshd.socket) exit 0;; *) echo "Unit $1.service not found." >&2; exit 5;; esac;;
esac
exit 1
"""


def test_start_service_starts_the_socket_on_a_socket_activated_host(tmp_path):
    """The queued command, run by a real shell against systemctl as on NixOS with startWhenNeeded,
    starts sshd.socket (sshd.service does not exist there); with the old unit list it fails."""
    import os
    import subprocess

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "systemctl").write_text(FAKE_SYSTEMCTL)
    (bindir / "systemctl").chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "KC_LOG": str(tmp_path / "log")}
    cmds, _ = run(systemd, systemd.start_service, units="sshd ssh sshd.socket ssh.socket")
    done = subprocess.run(["sh", "-c", cmds[0]], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "start -- sshd.socket" in (tmp_path / "log").read_text()
    cmds, _ = run(systemd, systemd.start_service, units="sshd ssh")
    assert subprocess.run(["sh", "-c", cmds[0]], env=env, capture_output=True, text=True).returncode == 1
