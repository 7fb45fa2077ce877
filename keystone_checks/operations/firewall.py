"""Fixes for the nftables firewall."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.server import Command

from ..facts.base import shell_quote
from ..facts.firewall import analyse_ruleset


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
    raw = host.get_fact(Command, "nft -j list ruleset 2>/dev/null || true")
    try:
        analysis = analyse_ruleset(json.loads(raw), port) if raw else None
    except Exception:  # noqa: BLE001 - unknown state: fall back to the guide's literal command
        analysis = None
    if analysis is not None and analysis["port_allowed"]:
        host.noop(f"tcp port {port} is already admitted")
        return
    chains = analysis["blocking_chains"] if analysis else [{"family": "inet", "table": "filter", "chain": "input"}]
    for chain in chains:
        fam, table, name = (shell_quote(chain[k]) for k in ("family", "table", "chain"))
        yield f"nft insert rule {fam} {table} {name} tcp dport {port} accept"
