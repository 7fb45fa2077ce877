"""Fixes for systemd services."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.server import Command

from ..facts.base import shell_quote


@operation()
def start_service(units: str = "sshd ssh"):
    """Start a service known under different unit names on different systems (guide: "systemctl start
    sshd"; NixOS calls it ``sshd``, Debian ``ssh``): the first of ``units`` that exists is started.
    No-op when any of them is already active.

    Socket activation (NixOS ``services.openssh.startWhenNeeded``: ``sshd.socket`` + ``sshd@.service``,
    no ``sshd.service``) is covered by listing the socket after the services: the service names do
    not exist there, so the socket is what gets started.

    + units: space-separated candidate unit names, in order, e.g. ``"sshd ssh sshd.socket ssh.socket"``

    **Example:**

    .. code:: python

        systemd.start_service(units="sshd ssh sshd.socket ssh.socket")
    """
    names = [u for u in str(units).split() if u]
    quoted = " ".join(shell_quote(u) for u in names)
    active = host.get_fact(Command, f"for u in {quoted}; do systemctl is-active --quiet -- \"$u\" && echo \"$u\"; done; true")
    if active:
        host.noop(f"{active.strip()} is already active")
        return
    yield (f"for u in {quoted}; do if systemctl cat -- \"$u\" >/dev/null 2>&1; then systemctl start -- \"$u\"; exit $?; fi; done; "
           f"echo {shell_quote('none of the units ' + ' '.join(names) + ' exists on this host')} >&2; exit 1")
