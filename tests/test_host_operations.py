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


def nft_output(case):
    return yaml.safe_load((FIXTURES / "firewall.NftRuleset" / f"{case}.yaml").read_text())["output"].split("\n", 1)[1]


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


def test_allow_tcp_port_inserts_into_blocking_chain_and_is_idempotent():
    cmds, _ = run(firewall, firewall.allow_tcp_port, {"nft": nft_output("drop-policy-without-ssh")}, port=22)
    assert cmds == ["nft insert rule inet filter input tcp dport 22 accept"]
    cmds, noops = run(firewall, firewall.allow_tcp_port, {"nft": nft_output("nixos-drop-policy-ssh-allowed-via-vmap-jump")}, port=22)
    assert cmds == [] and noops


def test_disk_release_ops_quote_the_disk():
    cmds, _ = run(boot, boot.release_disk_mounts, {"lsblk": "/mnt/boot"}, path="/dev/disk/by-id/x y")
    assert "readlink -f '/dev/disk/by-id/x y'" in cmds[0]
    assert run(boot, boot.swapoff_disk, path="/dev/vda")[0] == []
