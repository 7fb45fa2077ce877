"""The keystone-checks lab: real Debian guests (QEMU/TCG) with real ZFS, LUKS,
systemd, sshd and nix, used to prove every check against a live kernel.

Entry point: ``python -m keystone_checks.lab build|up|down|status|ssh|capture``
(see :mod:`keystone_checks.lab.cli`) and the pytest fixtures in ``tests/lab``.

Test tooling, apart from the runtime: nothing in engine/, frontends/, facts/, operations/ or
reports/ imports it (``keystone-checks lab`` loads it on demand).
"""


def main(argv: list[str]) -> int:
    """CLI entry (imported lazily so ``import keystone_checks.lab`` stays cheap)."""
    from keystone_checks.lab.cli import main as _main

    return _main(argv)
