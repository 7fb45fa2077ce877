"""Firewall: does nftables let SSH in? (``nft -j list ruleset``, parsed as JSON.)"""

from __future__ import annotations

import json

from ..errors import UnparseableOutput
from .base import KeystoneFact, parse_int, shell_quote


def _port_matches(right, port: int) -> bool:
    if isinstance(right, bool):
        return False
    if isinstance(right, int):
        return right == port
    if isinstance(right, str):
        return (right.isascii() and right.isdigit() and int(right) == port) or (right == "ssh" and port == 22)
    if isinstance(right, dict):
        if "set" in right:
            return isinstance(right["set"], list) and any(_port_matches(x, port) for x in right["set"])
        if "range" in right and isinstance(right["range"], list) and len(right["range"]) == 2:
            lo, hi = right["range"]
            return isinstance(lo, int) and isinstance(hi, int) and lo <= port <= hi
    if isinstance(right, list):
        return any(_port_matches(x, port) for x in right)
    return False


def _rule_accepts_port(exprs, port: int) -> bool:
    """A rule accepts the port: it ends in accept and any dport match it has includes the port."""
    if not isinstance(exprs, list):
        return False
    if not any(isinstance(e, dict) and "accept" in e for e in exprs):
        return False
    dport_matches = []
    for e in exprs:
        match = e.get("match") if isinstance(e, dict) else None
        if not isinstance(match, dict):
            continue
        left = match.get("left")
        payload = left.get("payload") if isinstance(left, dict) else None
        if isinstance(payload, dict) and payload.get("field") == "dport" and payload.get("protocol") in ("tcp", "th", None):
            dport_matches.append(match.get("op", "==") in ("==", "in") and _port_matches(match.get("right"), port))
    # Only a rule that names the port counts: a bare accept of e.g. "ct state established" does not admit new SSH connections.
    return bool(dport_matches) and all(dport_matches)


def _jumps(exprs) -> list[str]:
    """Chains a rule can continue in: jump/goto anywhere in it, including inside verdict maps
    (NixOS: ``ct state vmap { new : jump input-allow, ... }``)."""
    out: list[str] = []

    def walk(node, depth=0):
        if depth > 50:
            return
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("jump", "goto") and isinstance(v, dict) and isinstance(v.get("target"), str):
                    out.append(v["target"])
                else:
                    walk(v, depth + 1)
        elif isinstance(node, list):
            for v in node:
                walk(v, depth + 1)

    walk(exprs)
    return out


def _s(value):
    return value if isinstance(value, str) else None


def analyse_ruleset(data, port: int) -> dict:
    items = data.get("nftables") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise UnparseableOutput("nft -j output has no 'nftables' list")
    chains: dict[tuple, dict] = {}
    rules: dict[tuple, list] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("chain"), dict):
            c = item["chain"]
            key = (_s(c.get("family")), _s(c.get("table")), _s(c.get("name")))
            chains[key] = c
        elif isinstance(item.get("rule"), dict):
            r = item["rule"]
            rules.setdefault((_s(r.get("family")), _s(r.get("table")), _s(r.get("chain"))), []).append(r.get("expr"))
    input_chains, dropping, allowing = [], [], []
    for key, c in chains.items():
        if c.get("hook") != "input" or c.get("family") not in ("inet", "ip", "ip6"):
            continue
        entry = {"family": key[0], "table": key[1], "chain": key[2], "policy": c.get("policy")}
        input_chains.append(entry)
        # Which chains can this base chain reach (jump/goto), and does any rule there accept the port?
        seen, stack, ok = set(), [key], False
        while stack:
            cur = stack.pop()
            if cur in seen:
                continue
            seen.add(cur)
            for exprs in rules.get(cur, []):
                if _rule_accepts_port(exprs, port):
                    ok = True
                    allowing.append({"family": cur[0], "table": cur[1], "chain": cur[2]})
                for target in _jumps(exprs):
                    stack.append((cur[0], cur[1], target))
        drops_by_default = c.get("policy") == "drop"
        drops_by_rule = any(isinstance(e, dict) and ("drop" in e or "reject" in e) and
                            not any(isinstance(m, dict) and "match" in m for m in exprs)
                            for exprs in rules.get(key, []) if isinstance(exprs, list) for e in exprs)
        if (drops_by_default or drops_by_rule) and not ok:
            dropping.append(entry)
    return {"port": port, "input_chains": input_chains, "blocking_chains": dropping,
            "allowing_rules": allowing, "port_allowed": not dropping}


class NftRuleset(KeystoneFact):
    """Whether nftables admits TCP ``port``: every input-hook chain that drops by policy (or ends in
    an unconditional drop/reject) must reach, directly or through jump/goto, a rule accepting
    ``tcp dport PORT``. No dropping input chain at all also admits it. Rule order within a chain is
    not modelled (an earlier conditional drop is not detected).

    Arguments:
        port: TCP port (host data ``ssh_port_expected``)

    Example: ``{"port": 22, "input_chains": [{"family": "inet", "table": "nixos-fw", "chain": "input",
    "policy": "drop"}], "blocking_chains": [], "allowing_rules": [{"family": "inet", "table": "nixos-fw",
    "chain": "input-allow"}], "port_allowed": true}``
    """

    requires = "nft"

    def command(self, port):
        return f"echo {shell_quote('port ' + str(port))}; nft -j list ruleset"

    def process(self, output):
        if not output or not output[0].startswith("port "):
            raise UnparseableOutput("expected a 'port N' line first")
        port = parse_int(output[0][5:], "port")
        text = "\n".join(output[1:]).strip()
        if not text:
            return {"port": port, "input_chains": [], "blocking_chains": [], "allowing_rules": [], "port_allowed": True}
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UnparseableOutput(f"nft -j printed invalid JSON: {exc}") from None
        return analyse_ruleset(data, port)
