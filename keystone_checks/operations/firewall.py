"""Fixes for the host firewall, following its backend (nftables, iptables-nft, iptables-legacy)."""

from __future__ import annotations

import re

from pyinfra import host
from pyinfra.api import operation

from ..engine.commands import cmd, refuse
from ..errors import ProbeFailed, UnparseableOutput
from ..facts.firewall import InputFirewall
from . import read_fact

# nft joins its arguments into one line and parses that again: a table or chain name read from the
# host is safe to pass only when it is a plain nft identifier (letter or _, then letters, digits,
# _ . / -); anything else is refused, quoting alone would not protect it.
_NFT_FAMILIES = {"ip", "ip6", "inet", "arp", "bridge", "netdev"}
_NFT_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]{0,255}")


@operation()
def allow_tcp_port(port: int = 22):
    """Admit new TCP connections to ``port`` in every input path that drops or rejects them
    (guide: "nft add rule inet filter input tcp dport 22 accept"). The accept is *inserted* at the
    top (an appended rule after a drop would never match), in the backend that drops: ``nft insert
    rule`` into that base chain (NixOS: ``inet nixos-fw input``), ``iptables -I INPUT 1`` /
    ``ip6tables -I INPUT 1`` for iptables (legacy or nf_tables). No-op when the port is already
    admitted. Refuses when the rules cannot be read or understood, when the port is let in only
    from some sources or interfaces (a deliberate restriction, not a fault to open up), and when a
    chain name from the host is not a plain nft identifier.

    Runtime only: the NixOS firewall service restores the configured rules at its next reload or
    boot, so the lasting fix is ``networking.firewall.allowedTCPPorts = [ 22 ]`` and a rebuild.

    + port: TCP port, e.g. 22

    **Example:**

    .. code:: python

        firewall.allow_tcp_port(port=22)
    """
    port = int(port)
    try:
        state = read_fact(InputFirewall, port=port)
    except (ProbeFailed, UnparseableOutput) as exc:
        yield refuse(f"cannot read the firewall ({exc}); admit tcp/{port} by hand")
        return
    if not state:
        yield refuse(f"cannot read the firewall; admit tcp/{port} by hand")
        return
    if state["port_allowed"] and state["ipv6"]["verdict"] in ("accept", "unknown"):
        host.noop(f"tcp port {port} is already admitted")
        return
    if state["allowed_only"]:
        yield refuse(f"tcp/{port} is allowed only {', '.join(state['allowed_only'])}: a deliberate "
                     "restriction; connect from there or change the rules by hand")
        return
    seen: set[tuple] = set()
    key: tuple[str, ...]
    for path in state["blocked_in"]:  # an inet chain drops both families: one insert
        if path["backend"] == "nftables":
            fam, table, chain = (str(path[k]) for k in ("family", "table", "chain"))
            if fam not in _NFT_FAMILIES or not _NFT_IDENTIFIER.fullmatch(table) or not _NFT_IDENTIFIER.fullmatch(chain):
                yield refuse(f"nft chain {fam} {table} {chain} is not a plain nft identifier; admit tcp/{port} by hand")
                return
            key = ("nft", fam, table, chain)
            command = cmd("nft", "insert", "rule", fam, table, chain, "tcp", "dport", port, "accept")
        else:
            tool = "iptables" if path["family"] == "ipv4" else "ip6tables"
            key = (tool,)
            command = cmd(tool, "-w", "-I", "INPUT", "1", "-p", "tcp", "--dport", port, "-j", "ACCEPT")
        if key not in seen:
            seen.add(key)
            yield command
