"""Fixes for the Nix store and NixOS system generations."""

from __future__ import annotations

from pyinfra.api import operation

from ..engine.commands import cmd


@operation(is_idempotent=False)
def collect_garbage(profile: str = "/nix/var/nix/profiles/system", keep: int = 5):
    """Delete all but the newest ``keep`` system generations, then collect garbage
    (guide: ``nix-env --delete-generations +5 -p /nix/var/nix/profiles/system; nix-collect-garbage``).

    + profile: the system profile
    + keep: generations to keep (at least 2, so a rollback target always remains)

    **Example:**

    .. code:: python

        nix.collect_garbage(keep=5)
    """
    keep = max(int(keep), 2)
    yield cmd("nix-env", "--delete-generations", f"+{keep}", "-p", profile)
    yield cmd("nix-collect-garbage")


@operation(is_idempotent=False)
def rollback_system():
    """Switch to the previous NixOS generation (guide: ``nixos-rebuild switch --rollback``).

    **Example:**

    .. code:: python

        nix.rollback_system()
    """
    yield cmd("nixos-rebuild", "switch", "--rollback")
