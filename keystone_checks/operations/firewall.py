"""Fixes for the nftables firewall."""

from __future__ import annotations

import re

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationValueError
from pyinfra.facts.server import Command

from ..commands import NO_STDERR, OR, cmd
from ..facts.firewall import analyse_ruleset

# nft joins its arguments into one line and parses that: a table or chain name is safe to pass only
# when it is a plain nft identifier (nft's own grammar: letter or _, then letters, digits, _ . / -).
_NFT_FAMILIES = {"ip", "ip6", "inet", "arp", "bridge", "netdev"}
_NFT_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]{0,255}")


@operation()
def allow_tcp_port(port: int = 22):
    """Admit TCP ``port`` in every input chain that drops it (guide: "nft add rule inet filter input
    tcp dport 22 accept"). The rule is *inserted* at the top of each blocking chain (an appended rule
    after a drop would never match), in that chain's own table (NixOS uses ``inet nixos-fw``, not
    ``inet filter``). No-op when the port is already admitted. Runtime only: a firewall reload or
    reboot restores the configured ruleset, so fix the NixOS configuration too.

    + port: TCP port, e.g. 22

    **Example:**

    .. code:: python

        firewall.allow_tcp_port(port=22)
    """
    import json

    port = int(port)
    raw = host.get_fact(Command, cmd("nft", "-j", "list", "ruleset", NO_STDERR, OR, "true"))
    try:
        analysis = analyse_ruleset(json.loads(raw), port) if raw else None
    except Exception:  # noqa: BLE001 - unknown state: fall back to the guide's literal command
        analysis = None
    if analysis is not None and analysis["port_allowed"]:
        host.noop(f"tcp port {port} is already admitted")
        return
    chains = analysis["blocking_chains"] if analysis else [{"family": "inet", "table": "filter", "chain": "input"}]
    for chain in chains:
        fam, table, name = (str(chain[k]) for k in ("family", "table", "chain"))
        if fam not in _NFT_FAMILIES or not _NFT_IDENTIFIER.fullmatch(table) or not _NFT_IDENTIFIER.fullmatch(name):
            raise OperationValueError(f"refusing: nft chain {fam} {table} {name!r} is not a plain nft identifier; "
                                      "admit the port by hand")
        yield cmd("nft", "insert", "rule", fam, table, name, "tcp", "dport", port, "accept")
