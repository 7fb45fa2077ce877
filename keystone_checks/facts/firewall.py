"""Firewall: is tcp/PORT reachable from anywhere? Reads whichever backends the host has (nftables
``nft -j list ruleset``, iptables ``iptables -S`` / ``ip6tables -S``, legacy or nf_tables) and walks
each input path in rule order for one *generic* packet: a new TCP connection (SYN, conntrack NEW,
unicast) to PORT, from an arbitrary remote address, arriving on a non-loopback interface.

Rules that only match some sources or interfaces (``-s 10.0.0.0/8``, ``ip saddr ...``, ``-i eth1``)
do not match the generic packet; an accept among them is reported (``allowed_only``: "from
10.0.0.0/8"). A rule the evaluator does not understand, before the verdict, makes the answer
``unknown`` (an error, never a pass). Shapes handled: the NixOS firewalls (nixpkgs
nixos/modules/services/networking/firewall-iptables.nix, chains ``nixos-fw``, ``nixos-fw-accept``,
``nixos-fw-log-refuse``, ``nixos-fw-refuse``; firewall-nftables.nix, table ``inet nixos-fw`` with a
``ct state`` verdict map) and common hand-written rules (policy, jumps/goto/return, ``-p``,
``--dport``/``multiport``, ``-s``/``-d``, ``-i``, ``--ctstate``/``--state``, ``--syn``,
``--tcp-flags``, ``pkttype``, ``comment``, LOG).
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from typing import Any

from ..errors import ProbeFailed, UnparseableOutput
from .base import KeystoneFact, parse_int, shell_quote

MAX_DEPTH = 64
TERMINAL = ("accept", "drop", "reject")
_NON_TERMINATING_TARGETS = {"LOG", "NFLOG", "ULOG", "TRACE", "AUDIT"}


class Unknown(Exception):
    """A rule the evaluator cannot decide for the generic packet."""


def _quiet_verdict(walk, allowed_only: list, target: str, depth: int) -> str:
    """What a jump target decides, for a conditional rule (iptables and nft walks alike): the
    target's own notes (``allowed_only``) are not kept, and a rule it cannot read is "unknown"."""
    saved = list(allowed_only)
    try:
        return walk(target, depth + 1)[0]
    except Unknown:
        return "unknown"
    finally:
        allowed_only[:] = saved


# -- tri-state matches: True (generic packet matches), False (it does not), or a condition string
#    ("from 10.0.0.0/8"): matches only some packets, never the generic one.

def _combine(results):
    if any(r is False for r in results):
        return False
    conds = [r for r in results if isinstance(r, str)]
    return " and ".join(conds) if conds else True


def _negate(result):
    if result is True:
        return False
    if result is False:
        return True
    return f"not {result}"


def _everywhere(addr: str) -> bool:
    try:
        return ipaddress.ip_network(addr, strict=False).prefixlen == 0
    except ValueError:
        return False


def _port_in(spec, port: int) -> bool:
    """``22``, ``20:30`` (iptables), ``20-30`` or a comma list of them."""
    for part in str(spec).split(","):
        part = part.strip()
        sep = ":" if ":" in part else "-" if "-" in part else None
        if sep:
            lo, _, hi = part.partition(sep)
            if lo.isdigit() and hi.isdigit() and int(lo) <= port <= int(hi):
                return True
        elif part.isdigit() and int(part) == port:
            return True
        elif part == "ssh" and port == 22:
            return True
        elif not part.isdigit() and part != "ssh":
            raise Unknown(f"port {part!r}")
    return False


# ---------------------------------------------------------------- iptables (-S)

def parse_iptables_s(lines: list[str]) -> tuple[dict, dict]:
    """``iptables -S`` -> ({chain: policy or None}, {chain: [rule tokens]})."""
    policies: dict[str, str | None] = {}
    rules: dict[str, list[list[str]]] = {}
    for line in lines:
        if not line.strip():
            continue
        if line.startswith("#"):
            if "legacy tables present" in line:
                # iptables-nft says the legacy backend holds rules too, which -S here does not show.
                raise Unknown("iptables-legacy tables are present as well (read them with iptables-legacy -S)")
            continue
        try:
            tokens = shlex.split(line)
        except ValueError:
            raise UnparseableOutput(f"iptables -S: unbalanced quotes in {line[:120]!r}") from None
        if tokens[0] == "-P" and len(tokens) == 3:
            policies[tokens[1]] = tokens[2]
            rules.setdefault(tokens[1], [])
        elif tokens[0] == "-N" and len(tokens) == 2:
            policies.setdefault(tokens[1], None)
            rules.setdefault(tokens[1], [])
        elif tokens[0] == "-A" and len(tokens) >= 2:
            rules.setdefault(tokens[1], []).append(tokens[2:])
        else:
            raise UnparseableOutput(f"iptables -S: unexpected line {line[:120]!r}")
    return policies, rules


def _ipt_options(tokens: list[str]):
    """Split a rule into (negated, option, values) and the target with its options."""
    opts, i, neg, target, target_opts, goto = [], 0, False, None, [], False
    while i < len(tokens):
        tok = tokens[i]
        if tok == "!":
            neg, i = True, i + 1
            continue
        if not tok.startswith("-"):
            raise Unknown(f"unexpected token {tok!r}")
        j = i + 1
        while j < len(tokens) and not tokens[j].startswith("-") and tokens[j] != "!":
            j += 1
        values = tokens[i + 1:j]
        if tok in ("-j", "--jump", "-g", "--goto"):
            target, goto = (values[0] if values else None), tok in ("-g", "--goto")
            target_opts = tokens[j:]  # iptables -S prints the target's own options after it
            break
        opts.append((neg, tok, values))
        neg, i = False, j
    return opts, target, goto, target_opts


_KNOWN_MODULES = {"tcp", "udp", "icmp", "icmp6", "multiport", "conntrack", "state", "pkttype", "comment"}


def _ipt_match(opts, port: int, family: str):
    results: list[bool | str] = []
    protocol = None
    r: bool | str  # True: matches every TCP packet to the port; False: none; text: only some
    for neg, opt, values in opts:
        v = values[0] if values else ""
        if opt in ("-p", "--protocol"):
            protocol = v
            r = v in ("tcp", "6", "all", "0")
        elif opt in ("-s", "--source", "-d", "--destination"):
            where = "from" if opt in ("-s", "--source") else "to"
            if all(_everywhere(a) for a in v.split(",")):
                r = True
            elif neg:
                results.append(True)  # "not from X": the generic remote address is not in X
                continue
            else:
                r = f"{where} {v}"
        elif opt in ("-i", "--in-interface"):
            if v == "lo":
                r = False
            elif v == "+":
                r = True
            else:
                r = f"on interface {v}"
        elif opt in ("-m", "--match"):
            if v not in _KNOWN_MODULES:
                raise Unknown(f"match module {v!r}")
            continue
        elif opt in ("--dport", "--destination-port", "--dports", "--destination-ports"):
            r = protocol in ("tcp", "6") and _port_in(v, port)
        elif opt in ("--sport", "--source-port", "--sports", "--source-ports"):
            r = f"source port {v}"
        elif opt == "--syn":
            r = True
        elif opt == "--tcp-flags":
            if len(values) != 2:
                raise Unknown(f"--tcp-flags {values}")
            mask, comp = set(values[0].split(",")), set(values[1].split(","))
            if "ALL" in mask:
                mask = {"FIN", "SYN", "RST", "PSH", "ACK", "URG"}
            comp.discard("NONE")
            r = ({"SYN"} & mask) == comp
        elif opt in ("--ctstate", "--state"):
            r = "NEW" in v.split(",")
        elif opt == "--pkt-type":
            r = v == "unicast"
        elif opt in ("--icmp-type", "--icmpv6-type"):
            r = False  # only with -p icmp/icmpv6, which a TCP packet never matches
        elif opt == "--comment":
            r = True
        elif opt in ("-f", "--fragment"):
            r = False
        else:
            raise Unknown(f"option {opt}")
        results.append(_negate(r) if neg else r)
    return _combine(results)


def iptables_verdict(policies: dict, rules: dict, port: int, family: str) -> dict:
    """Walk INPUT for the generic packet. Returns {verdict, allowed_only, decided_by}."""
    allowed_only: list[str] = []

    def walk(chain, depth):
        if depth > MAX_DEPTH:
            raise Unknown("jumps nested too deep (a loop?)")
        for tokens in rules.get(chain, []):
            text = f"-A {chain} {shlex.join(tokens)}"
            opts, target, goto, _ = _ipt_options(tokens)
            try:
                matched = _ipt_match(opts, port, family)
            except Unknown as exc:
                if target is None or target in _NON_TERMINATING_TARGETS:
                    continue
                raise Unknown(f"{exc} in `{text}`") from None
            if matched is False or target is None or target in _NON_TERMINATING_TARGETS:
                continue
            if isinstance(matched, str):
                # Not the generic packet; remember whether these packets would be let in.
                if target == "ACCEPT" or (target in rules and _quiet(target, depth) == "accept"):
                    allowed_only.append(matched)
                continue
            if target == "ACCEPT":
                return "accept", text
            if target in ("DROP", "REJECT"):
                return target.lower(), text
            if target == "RETURN":
                return "return", text
            if target in rules:
                verdict, where = walk(target, depth + 1)
                if verdict != "return" or goto:
                    return verdict, where
                continue
            raise Unknown(f"target {target!r} in `{text}`")
        if chain in ("INPUT",):
            policy = policies.get(chain) or "ACCEPT"
            return policy.lower(), f"-P {chain} {policy}"
        return "return", f"end of {chain}"

    def _quiet(target, depth):
        return _quiet_verdict(walk, allowed_only, target, depth)

    try:
        verdict, where = walk("INPUT", 0)
    except Unknown as exc:
        return {"verdict": "unknown", "allowed_only": allowed_only, "decided_by": str(exc)}
    if verdict == "return":
        verdict = (policies.get("INPUT") or "ACCEPT").lower()
    return {"verdict": verdict, "allowed_only": allowed_only, "decided_by": where}


# ---------------------------------------------------------------- nftables (JSON)

def _nft_values(right):
    if isinstance(right, dict) and "set" in right:
        return right["set"] if isinstance(right["set"], list) else [right["set"]]
    if isinstance(right, list):
        return right
    return [right]


def _nft_port(value, port: int) -> bool:
    if isinstance(value, bool):
        raise Unknown(f"port {value!r}")
    if isinstance(value, int):
        return value == port
    if isinstance(value, str):
        return _port_in(value, port)
    if isinstance(value, dict) and isinstance(value.get("range"), list) and len(value["range"]) == 2:
        lo, hi = value["range"]
        if isinstance(lo, int) and isinstance(hi, int):
            return lo <= port <= hi
    raise Unknown(f"port value {value!r}")


def _addr_text(value):
    if isinstance(value, dict) and isinstance(value.get("prefix"), dict):
        p = value["prefix"]
        return f"{p.get('addr')}/{p.get('len')}"
    return str(value)


def _nft_match(m: dict, port: int, family: str, sets: dict):
    r: bool | str  # as in _ipt_match
    op, left, right = m.get("op", "=="), m.get("left"), m.get("right")
    if op not in ("==", "!=", "in"):
        raise Unknown(f"operator {op!r}")
    if isinstance(right, str) and right.startswith("@"):
        elements = sets.get(right[1:])
        if elements is None or elements:
            raise Unknown(f"lookup in set {right}")
        r = False  # an empty set (NixOS temp-ports with nothing opened) matches nothing
    elif isinstance(left, dict) and "payload" in left:
        proto, field = left["payload"].get("protocol"), left["payload"].get("field")
        if proto in ("tcp", "th") and field == "dport":
            r = any(_nft_port(v, port) for v in _nft_values(right))
        elif proto in ("ip", "ip6") and field in ("saddr", "daddr"):
            if (proto == "ip") != (family == "ipv4"):
                return False  # an ip header match never matches the other family (even with !=)
            else:
                addrs = [_addr_text(v) for v in _nft_values(right)]
                r = True if all(_everywhere(a) for a in addrs) else f"{'from' if field == 'saddr' else 'to'} {', '.join(addrs)}"
                if op == "!=" and isinstance(r, str):
                    return True  # "not from X": the generic remote address is not in X
        elif proto == "tcp" and field == "sport":
            r = f"source port {right}"
        elif proto in ("udp", "icmp", "icmpv6", "sctp", "udplite", "igmp", "esp", "ah"):
            return False  # header of another protocol: never a TCP packet (even with !=)
        else:
            raise Unknown(f"payload {proto} {field}")
    elif isinstance(left, dict) and "meta" in left:
        key = left["meta"].get("key")
        values = _nft_values(right)
        if key in ("iifname", "iif"):
            parts = []
            for v in values:
                v = str(v)
                parts.append(False if v == "lo" else True if v == "*" else f"on interface {v}")
            r = True if True in parts else next((p for p in parts if isinstance(p, str)), False)
        elif key == "l4proto":
            r = any(str(v) in ("tcp", "6") for v in values)
        elif key == "nfproto":
            r = family in [str(v) for v in values]
        elif key == "protocol":  # the ethertype: ip / ip6
            r = ("ip" if family == "ipv4" else "ip6") in [str(v) for v in values]
        elif key == "pkttype":
            r = "host" in [str(v) for v in values]
        else:
            raise Unknown(f"meta {key}")
    elif isinstance(left, dict) and "ct" in left:
        key = left["ct"].get("key")
        if key == "state":
            states = []
            for v in _nft_values(right):
                states += v if isinstance(v, list) else [v]
            r = "new" in states
        elif key == "status":
            r = False  # dnat/snat/...: not a new connection to this host's own address
        else:
            raise Unknown(f"ct {key}")
    elif isinstance(left, dict) and "&" in left:
        operands = left["&"]
        inner = operands[0] if isinstance(operands, list) and operands else None
        if isinstance(inner, dict) and inner.get("payload", {}).get("field") == "flags" and inner["payload"].get("protocol") == "tcp":
            mask = set(operands[1]) if isinstance(operands[1], list) else {operands[1]}
            want = set(right) if isinstance(right, list) else {right}
            r = ({"syn"} & mask) == want
        else:
            raise Unknown(f"bitwise match {left!r}"[:200])
    else:
        raise Unknown(f"match on {left!r}"[:200])
    return _negate(r) if op == "!=" else r


_NFT_STATEMENTS = {"counter", "log", "comment", "limit", "notrack"}
_NFT_VERDICTS = {"accept", "drop", "reject", "return", "continue", "jump", "goto", "vmap"}


def _nft_rule(exprs, port, family, sets):
    """(match result, verdict) of one rule; verdict is ('accept'|'drop'|'reject'|'return'|
    'continue', None) or ('jump'|'goto', chain) or None (no verdict)."""
    results, verdict = [], None
    exprs = exprs if isinstance(exprs, list) else []
    if not any(isinstance(e, dict) and _NFT_VERDICTS & set(e) for e in exprs):
        return False, None  # log/counter only (NixOS: "refused connection" logging): decides nothing
    for e in exprs:
        if not isinstance(e, dict) or len(e) != 1:
            raise Unknown(f"expression {e!r}"[:200])
        (kind, body), = e.items()
        if kind == "match":
            results.append(_nft_match(body, port, family, sets))
            if results[-1] is False:
                return False, None
        elif kind in ("accept", "drop", "reject", "return", "continue"):
            verdict = (kind, None)
        elif kind in ("jump", "goto"):
            verdict = (kind, body.get("target") if isinstance(body, dict) else None)
        elif kind == "vmap":
            key = body.get("key") if isinstance(body, dict) else None
            if not (isinstance(key, dict) and key.get("ct", {}).get("key") == "state"):
                raise Unknown(f"verdict map on {key!r}"[:200])
            for pair in _nft_values(body.get("data")):
                if isinstance(pair, list) and len(pair) == 2 and pair[0] == "new" and isinstance(pair[1], dict):
                    (k, v), = pair[1].items()
                    verdict = (k, v.get("target") if isinstance(v, dict) else None)
        elif kind in _NFT_STATEMENTS:
            if kind == "limit" and verdict is None:
                results.append("rate-limited")
        else:
            raise Unknown(f"statement {kind!r}")
    return _combine(results), verdict


def nft_verdicts(data, port: int, family: str, skip_tables=()) -> list[dict]:
    """Each input-hook filter base chain for ``family`` ("ipv4"/"ipv6") in priority order:
    {family, table, chain, verdict, allowed_only, decided_by}."""
    items = data.get("nftables") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise UnparseableOutput("nft -j output has no 'nftables' list")
    chains: dict[Any, Any] = {}
    rules: dict[Any, Any] = {}
    sets: dict[Any, Any] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("chain"), dict):
            c = item["chain"]
            chains[(c.get("family"), c.get("table"), c.get("name"))] = c
        elif isinstance(item.get("rule"), dict):
            r = item["rule"]
            rules.setdefault((r.get("family"), r.get("table"), r.get("chain")), []).append(r.get("expr"))
        elif isinstance(item.get("set"), dict):
            s = item["set"]
            sets[s.get("name")] = s.get("elem") or []
    families = ("inet", "ip") if family == "ipv4" else ("inet", "ip6")
    base = [c for k, c in chains.items() if c.get("hook") == "input" and c.get("family") in families
            and c.get("type", "filter") == "filter" and (k[0], k[1]) not in skip_tables]
    base.sort(key=lambda c: c.get("prio", 0) if isinstance(c.get("prio"), int) else 0)
    out = []
    for c in base:
        fam, table = c.get("family"), c.get("table")
        allowed_only: list[str] = []

        # this chain's family, table and list bound now (the closures run within this iteration)
        def walk(name, depth, fam=fam, table=table, allowed_only=allowed_only):
            if depth > MAX_DEPTH:
                raise Unknown("jumps nested too deep (a loop?)")
            for n, exprs in enumerate(rules.get((fam, table, name), [])):
                where = f"{fam} {table} {name} rule {n + 1}"
                try:
                    matched, verdict = _nft_rule(exprs, port, family, sets)
                except Unknown as exc:
                    raise Unknown(f"{exc} in {where}") from None
                if matched is False or verdict is None or verdict[0] == "continue":
                    continue
                kind, target = verdict
                if isinstance(matched, str):
                    if kind == "accept" or (kind in ("jump", "goto") and _quiet(target, depth) == "accept"):
                        allowed_only.append(matched)
                    continue
                if kind in TERMINAL or kind == "return":
                    return kind, where
                sub, sub_where = walk(target, depth + 1)
                if sub != "return" or kind == "goto":
                    return sub, sub_where
            return "return", f"end of {name}"

        def _quiet(target, depth, walk=walk, allowed_only=allowed_only):
            return _quiet_verdict(walk, allowed_only, target, depth)

        entry = {"family": fam, "table": table, "chain": c.get("name")}
        try:
            verdict, where = walk(c.get("name"), 0)
            if verdict == "return":
                verdict, where = (c.get("policy") or "accept"), f"policy {c.get('policy') or 'accept'}"
            out.append({**entry, "verdict": verdict, "allowed_only": allowed_only, "decided_by": where})
        except Unknown as exc:
            out.append({**entry, "verdict": "unknown", "allowed_only": allowed_only, "decided_by": str(exc)})
    return out


def _overall(paths: list[dict]) -> dict:
    """Packets pass every input path in turn: the first drop/reject/unknown decides."""
    allowed_only = [a for p in paths for a in p["allowed_only"]]
    for p in paths:
        if p["verdict"] != "accept":
            return {"verdict": p["verdict"], "allowed_only": allowed_only, "decided_by": p["decided_by"]}
    return {"verdict": "accept", "allowed_only": [], "decided_by": paths[-1]["decided_by"] if paths else "no input filter"}


def _section(output, name):
    """Lines after the ``--kc-NAME`` marker up to the next marker."""
    lines, inside = [], False
    for line in output:
        if line.startswith("--kc-") or line in ("nft-missing", "iptables-missing"):
            inside = line == f"--kc-{name}"
        elif inside:
            lines.append(line)
    return lines


def _rc(lines, label):
    for line in lines:
        if line.startswith(f"{label}-rc "):
            return parse_int(line.split()[1], f"{label} exit code")
    return None


def _body(lines, label):
    return [line for line in lines if not line.startswith(f"{label}-rc ")]


def analyse(output: list[str]) -> dict:
    """The InputFirewall answer from its command's output (also used by the fix, which reads the
    same command through pyinfra's Command fact). Raises ProbeFailed when the tools are missing or
    fail, or when the IPv4 answer is unknown."""
    if not output or not output[0].startswith("port "):
        raise UnparseableOutput("expected a 'port N' line first")
    port = parse_int(output[0][5:], "port")
    nft, v4, v6, version = (_section(output, s) for s in ("nft", "iptables", "ip6tables", "iptables-version"))
    have_nft = "nft-missing" not in output
    have_ipt = "iptables-missing" not in output
    if not have_nft and not have_ipt:
        raise ProbeFailed("neither nft nor iptables is installed: cannot tell what the firewall does")
    backends, ipt_nft = [], False
    ipt_paths: dict[str, list[dict[str, Any]]] = {"ipv4": [], "ipv6": []}
    if have_ipt:
        text = " ".join(version)
        ipt_nft = "nf_tables" in text
        for family, lines, label in (("ipv4", v4, "iptables"), ("ipv6", v6, "ip6tables")):
            rc = _rc(lines, label)
            body = _body(lines, label)
            if rc is None:
                if family == "ipv6":
                    continue  # no ip6tables binary: nothing more to read
                raise UnparseableOutput(f"{label} -S: output cut short")
            if rc != 0:
                msg = " ".join(body)[:200]
                if family == "ipv6" and "not exist" in msg:
                    continue  # kernel without IPv6 tables
                raise ProbeFailed(f"{label} -S exited {rc}: {msg}")
            try:
                policies, rules = parse_iptables_s(body)
            except Unknown as exc:
                ipt_paths[family] = [{"backend": "iptables-nft" if ipt_nft else "iptables-legacy", "family": family,
                                      "table": "filter", "chain": "INPUT", "verdict": "unknown",
                                      "allowed_only": [], "decided_by": str(exc)}]
                continue
            if any(rules.values()) or any(p not in (None, "ACCEPT") for p in policies.values()):
                ipt_paths[family] = [{"backend": "iptables-nft" if ipt_nft else "iptables-legacy", "family": family,
                                      "table": "filter", "chain": "INPUT",
                                      **iptables_verdict(policies, rules, port, family)}]
        if ipt_paths["ipv4"] or ipt_paths["ipv6"]:
            backends.append("iptables-nft" if ipt_nft else "iptables-legacy")
    nft_paths: dict[str, list[dict[str, Any]]] = {"ipv4": [], "ipv6": []}
    nixos_nft = False
    if have_nft:
        rc = _rc(nft, "nft")
        body = "\n".join(_body(nft, "nft")).strip()
        if rc is None:
            raise UnparseableOutput("nft -j list ruleset: output cut short")
        if rc != 0:
            raise ProbeFailed(f"nft -j list ruleset exited {rc}: {body[:200]}")
        if body:
            try:
                data = json.loads(body)
            except json.JSONDecodeError as exc:
                raise UnparseableOutput(f"nft -j printed invalid JSON: {exc}") from None
            # iptables-nft keeps its rules in ip/ip6 tables with xt expressions; they are read with iptables -S.
            skip = {("ip", "filter"), ("ip6", "filter")} if ipt_nft else set()
            for family in ("ipv4", "ipv6"):
                nft_paths[family] = [{"backend": "nftables", **p} for p in nft_verdicts(data, port, family, skip)]
            nixos_nft = any(isinstance(i, dict) and isinstance(i.get("table"), dict) and i["table"].get("family") == "inet"
                            and i["table"].get("name") == "nixos-fw" for i in data.get("nftables", []))
            if nft_paths["ipv4"] or nft_paths["ipv6"]:
                backends.append("nftables")
    nixos_ipt = any(line == "-N nixos-fw" for line in v4)
    result: dict[str, Any] = {"port": port, "backends": backends,
              "nixos_firewall": "nftables" if nixos_nft else "iptables" if nixos_ipt else None}
    for family in ("ipv4", "ipv6"):
        paths = nft_paths[family] + ipt_paths[family]
        result[family] = {**_overall(paths), "paths": paths}
    v = result["ipv4"]["verdict"]
    result["port_allowed"] = v == "accept"
    result["allowed_only"] = result["ipv4"]["allowed_only"] if v != "accept" else []
    result["blocked_in"] = [{k: p[k] for k in ("backend", "family", "table", "chain")}
                            for fam in ("ipv4", "ipv6") for p in result[fam]["paths"] if p["verdict"] in ("drop", "reject")]
    if v == "unknown":
        raise ProbeFailed(f"cannot tell whether tcp/{port} is reachable: {result['ipv4']['decided_by']} "
                          "(a rule beyond what the evaluator understands; read the ruleset by hand)")
    return result


class InputFirewall(KeystoneFact):
    """Whether the firewall lets a new TCP connection to ``port`` in from anywhere, whatever the
    backend: nftables (``nft -j list ruleset``; NixOS ``networking.nftables.enable``: table ``inet
    nixos-fw``), iptables-nft or iptables-legacy (``iptables -V``, ``iptables -S``, ``ip6tables -S``;
    the NixOS default ``networking.firewall``: INPUT policy ACCEPT, ``-j nixos-fw``). Every input path
    (each nft input base chain, the iptables INPUT chain) is walked in rule order; the first drop or
    reject decides. ``port_allowed`` is the IPv4 answer; IPv6 is reported beside it. A rule the
    evaluator cannot read before the verdict is an error, never a pass. Needs root.

    Arguments:
        port: TCP port (host data ``ssh_port_expected``)

    Example: ``{"port": 22, "backends": ["iptables-nft"], "nixos_firewall": "iptables",
    "ipv4": {"verdict": "drop", "allowed_only": ["from 10.0.0.0/8"], "decided_by": "-A nixos-fw-refuse -j DROP",
    "paths": [...]}, "ipv6": {...}, "port_allowed": false, "allowed_only": ["from 10.0.0.0/8"],
    "blocked_in": [{"backend": "iptables-nft", "family": "ipv4", "table": "filter", "chain": "INPUT"}]}``
    """

    def command(self, port: int):
        return (f"echo {shell_quote('port ' + str(int(port)))}; "
                "if command -v nft >/dev/null 2>&1; then echo '--kc-nft'; nft -j list ruleset 2>&1; "
                "echo \"nft-rc $?\"; else echo 'nft-missing'; fi; "
                "if command -v iptables >/dev/null 2>&1; then echo '--kc-iptables-version'; iptables -V 2>&1; "
                "echo '--kc-iptables'; iptables -S 2>&1; echo \"iptables-rc $?\"; else echo 'iptables-missing'; fi; "
                "if command -v ip6tables >/dev/null 2>&1; then echo '--kc-ip6tables'; ip6tables -S 2>&1; "
                "echo \"ip6tables-rc $?\"; fi")

    def process(self, output):
        return analyse(output)


class NftRuleset(KeystoneFact):
    """nftables only (``nft -j list ruleset``): each input base chain walked in rule order (see
    :class:`InputFirewall`, which the checks use; this one reads a captured nft ruleset alone).

    Arguments:
        port: TCP port

    Example: ``{"port": 22, "paths": [{"family": "inet", "table": "nixos-fw", "chain": "input",
    "verdict": "accept", "allowed_only": [], "decided_by": "inet nixos-fw input-allow rule 1"}],
    "port_allowed": true, "allowed_only": []}``
    """

    requires = "nft"

    def command(self, port):
        return f"echo {shell_quote('port ' + str(port))}; nft -j list ruleset"

    def process(self, output):
        if not output or not output[0].startswith("port "):
            raise UnparseableOutput("expected a 'port N' line first")
        port = parse_int(output[0][5:], "port")
        text = "\n".join(output[1:]).strip()
        data = {"nftables": []}
        if text:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise UnparseableOutput(f"nft -j printed invalid JSON: {exc}") from None
        paths = nft_verdicts(data, port, "ipv4")
        overall = _overall(paths)
        return {"port": port, "paths": paths, "port_allowed": overall["verdict"] == "accept",
                "allowed_only": overall["allowed_only"] if overall["verdict"] != "accept" else []}
