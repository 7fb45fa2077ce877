"""Fixes for systemd services."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation

from ..engine.commands import THEN, Syntax, cmd, fail, sh
from ..errors import ProbeFailed, UnparseableOutput
from ..facts.systemd import ServiceActive
from . import read_fact


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
    try:
        state = read_fact(ServiceActive, units=units)
    except (ProbeFailed, UnparseableOutput):
        state = None  # not known to be active: the command decides on the host
    if state and state.get("any_active"):
        host.noop(f"{' '.join(state['active'])} is already active")
        return
    yield cmd(
        Syntax("for u in"), *names, sh(_START_FIRST_EXISTING), THEN,
        fail(f"none of the units {' '.join(names)} exists on this host"),
    )


# Starts the first unit of the list that exists, and exits with systemctl's status.
_START_FIRST_EXISTING = ('; do if systemctl cat -- "$u" >/dev/null 2>&1; then systemctl start -- "$u"; exit $?; fi; done')
