"""Operations: how to fix. Each is a pyinfra ``@operation``: idempotent, ``host.noop()`` when there
is nothing to do, every command built from quoted parts (``keystone_checks.engine.commands``), host state read through
facts (``read_fact``).

Check files name them ``module.function`` (ours, e.g. ``luks.close_mapping``) or
``pyinfra:module.function`` (pyinfra's own, e.g. ``pyinfra:systemd.service``).
"""

from __future__ import annotations

import importlib


def resolve_operation(name: str):
    """The operation function for a check file's ``op`` name; LookupError says what exists."""
    if name.startswith("pyinfra:"):
        package, short = "pyinfra.operations", name.removeprefix("pyinfra:")
    else:
        package, short = __name__, name
    module_name, _, func_name = short.partition(".")
    try:
        module = importlib.import_module(f"{package}.{module_name}")
    except ImportError:
        raise LookupError(f"unknown operation '{name}': no module {package}.{module_name}") from None
    func = getattr(module, func_name, None)
    if func is None or not hasattr(func, "_inner"):
        known = sorted(n for n, f in vars(module).items() if hasattr(f, "_inner") and not n.startswith("_"))
        raise LookupError(f"unknown operation '{name}' (module {module_name} has: {', '.join(known) or 'none'})")
    return func


def read_fact(cls, **args):
    """``host.get_fact`` for one of our facts, accepting the exit codes the fact declares still carry
    an answer (``cryptsetup status`` exits 4 for a closed mapping, ``zpool status`` 1 for a missing
    pool): what an exit code means stays in the fact, never in the operation.

    **Example:** ``read_fact(PoolList, pool="rpool")["imported"]``
    """
    from pyinfra import host

    return host.get_fact(cls, **args, _success_exit_codes=sorted(cls.ok_exit_codes))
