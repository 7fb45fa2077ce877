"""Fixes for the host firewall, following its backend (nftables, iptables-nft, iptables-legacy)."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.server import Command

from ..errors import ProbeFailed, UnparseableOutput
from ..facts.base import shell_quote
from ..facts.firewall import InputFirewall, analyse


def _refuse(message: str) -> str:
    return f"echo {shell_quote('refusing: ' + message)} >&2; exit 1"


@operation()
def allow_tcp_port(port: int = 22):
    """Admit new TCP connections to ``port`` in every input path that drops or rejects them
    (guide: "nft add rule inet filter input tcp dport 22 accept"). The accept is *inserted* at the
    top (an appended rule after a drop would never match), in the backend that drops: ``nft insert
    rule`` into that base chain (NixOS: ``inet nixos-fw input``), ``iptables -I INPUT 1`` /
    ``ip6tables -I INPUT 1`` for iptables (legacy or nf_tables). No-op when the port is already
    admitted. Refuses when the rules cannot be read or understood, and when the port is let in
    only from some sources or interfaces (a deliberate restriction, not a fault to open up).

    Runtime only: the NixOS firewall service restores the configured rules at its next reload or
    boot, so the lasting fix is ``networking.firewall.allowedTCPPorts = [ 22 ]`` and a rebuild.

    + port: TCP port, e.g. 22

    **Example:**

    .. code:: python

        firewall.allow_tcp_port(port=22)
    """
    port = int(port)
    raw = host.get_fact(Command, InputFirewall().command(port) + "; true")
    try:
        state = analyse(str(raw or "").splitlines())
    except (ProbeFailed, UnparseableOutput) as exc:
        yield _refuse(f"cannot read the firewall ({exc}); admit tcp/{port} by hand")
        return
    if state["port_allowed"] and state["ipv6"]["verdict"] in ("accept", "unknown"):
        host.noop(f"tcp port {port} is already admitted")
        return
    if state["allowed_only"]:
        yield _refuse(f"tcp/{port} is allowed only {', '.join(state['allowed_only'])}: a deliberate "
                      "restriction; connect from there or change the rules by hand")
        return
    commands: list[str] = []
    for path in state["blocked_in"]:  # an inet chain drops both families: one insert
        if path["backend"] == "nftables":
            fam, table, chain = (shell_quote(path[k]) for k in ("family", "table", "chain"))
            command = f"nft -- insert rule {fam} {table} {chain} tcp dport {port} accept"
        else:
            tool = "iptables" if path["family"] == "ipv4" else "ip6tables"
            command = f"{tool} -w -I INPUT 1 -p tcp --dport {port} -j ACCEPT"
        if command not in commands:
            commands.append(command)
    yield from commands
