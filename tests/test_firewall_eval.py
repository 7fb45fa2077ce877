"""firewall.InputFirewall's evaluator on the lab guests' real nft captures, and the issue-12 shapes
that used to pass: a drop before the accept, an accept for one source only."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from keystone_checks.facts.firewall import analyse, iptables_verdict, parse_iptables_s

CAPTURED = Path(__file__).parent / "fixtures" / "captured"


@pytest.mark.parametrize("state, verdict", [("installer-healthy", "accept"), ("deployed-healthy", "accept"),
                                            ("deployed-firewall-drops-ssh", "drop")])
@pytest.mark.parametrize("zfs", ["zfs21", "zfs23"])
def test_lab_captures(zfs, state, verdict):
    (path,) = (CAPTURED / zfs / state).glob("nft-j-list-ruleset-*.yaml")
    capture = yaml.safe_load(path.read_text())
    ruleset = (capture.get("stdout") or capture.get("output")).strip()
    got = analyse(["port 22", "--kc-nft", ruleset, "nft-rc 0", "iptables-missing"])
    assert got["ipv4"]["verdict"] == verdict and got["backends"] == ["nftables"]
    # The fault's ruleset accepts only tcp/2222 (the lab's own rule); the healthy ones only 22.
    other = analyse(["port 2222", "--kc-nft", ruleset, "nft-rc 0", "iptables-missing"])["port_allowed"]
    assert other is (verdict == "drop")


def _ipt(rules: str, port: int = 22) -> dict:
    policies, chains = parse_iptables_s(rules.strip().splitlines())
    return iptables_verdict(policies, chains, port, "ipv4")


def test_drop_in_an_accepting_chain_before_the_accept_fails():
    got = _ipt("-P INPUT ACCEPT\n-A INPUT -p tcp -m tcp --dport 22 -j DROP\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT")
    assert got["verdict"] == "drop" and "DROP" in got["decided_by"]


def test_accept_only_from_one_source_is_reported_and_fails():
    got = _ipt("-P INPUT DROP\n-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j ACCEPT")
    assert got["verdict"] == "drop" and got["allowed_only"] == ["from 10.0.0.0/8"]
    # A drop for one source only leaves everyone else admitted; the negated source drops the rest.
    assert _ipt("-P INPUT ACCEPT\n-A INPUT -s 192.0.2.7/32 -j DROP")["verdict"] == "accept"
    assert _ipt("-P INPUT ACCEPT\n-A INPUT ! -s 10.0.0.0/8 -p tcp --dport 22 -j DROP")["verdict"] == "drop"


def test_loopback_and_established_accepts_do_not_admit_new_connections():
    got = _ipt("-P INPUT DROP\n-A INPUT -i lo -j ACCEPT\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    assert got["verdict"] == "drop" and got["allowed_only"] == []


def test_unknown_match_before_the_verdict_is_unknown_but_after_it_is_ignored():
    assert _ipt("-P INPUT DROP\n-A INPUT -m recent --rcheck -j DROP\n-A INPUT -p tcp --dport 22 -j ACCEPT")["verdict"] == "unknown"
    assert _ipt("-P INPUT DROP\n-A INPUT -p udp -m recent --rcheck -j DROP\n-A INPUT -p tcp --dport 22 -j ACCEPT")["verdict"] == "unknown"
    assert _ipt("-P INPUT DROP\n-A INPUT -p tcp --dport 22 -j ACCEPT\n-A INPUT -m recent --rcheck -j DROP")["verdict"] == "accept"
    assert _ipt("-P INPUT DROP\n-A INPUT -m recent --set -j LOG\n-A INPUT -p tcp --dport 22 -j ACCEPT")["verdict"] == "accept"


def test_return_goto_and_jump_loops():
    rules = ("-P INPUT DROP\n-N a\n-N b\n-A INPUT -j a\n-A a -p udp -j RETURN\n-A a -g b\n-A a -j DROP\n"
             "-A b -p tcp --dport 22 -j RETURN\n-A INPUT -p tcp --dport 22 -j ACCEPT")
    assert _ipt(rules)["verdict"] == "accept"  # b returns past a's DROP (goto), INPUT then accepts
    assert _ipt("-P INPUT ACCEPT\n-N a\n-A INPUT -j a\n-A a -j a")["verdict"] == "unknown"


def _nft(*rules, policy="drop", family="ipv4"):
    from keystone_checks.facts.firewall import nft_verdicts
    items = [{"chain": {"family": "inet", "table": "t", "name": "input", "type": "filter", "hook": "input",
                        "prio": 0, "policy": policy}}]
    items += [{"rule": {"family": "inet", "table": "t", "chain": "input", "expr": expr}} for expr in rules]
    return nft_verdicts({"nftables": items}, 22, family)[0]


FIB = {"match": {"op": "==", "left": {"fib": {"result": "oif", "flags": ["saddr", "iif"]}}, "right": False}}
SSH = {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}


def test_nft_rules_without_a_verdict_decide_nothing_but_unknown_verdict_rules_do():
    assert _nft([FIB, {"log": {"prefix": "x"}}], [SSH, {"accept": None}])["verdict"] == "accept"
    assert _nft([FIB, {"drop": None}], [SSH, {"accept": None}])["verdict"] == "unknown"


def test_nft_source_restriction_and_family():
    v4only = {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                        "right": {"prefix": {"addr": "10.0.0.0", "len": 8}}}}
    got = _nft([v4only, SSH, {"accept": None}])
    assert got["verdict"] == "drop" and got["allowed_only"] == ["from 10.0.0.0/8"]
    # "ip saddr != X" never matches an IPv6 packet: the drop below does not apply to it.
    negated = {"match": {**v4only["match"], "op": "!="}}
    assert _nft([negated, SSH, {"drop": None}], policy="accept")["verdict"] == "drop"
    assert _nft([negated, SSH, {"drop": None}], policy="accept", family="ipv6")["verdict"] == "accept"
