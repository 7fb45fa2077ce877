"""Facts: how to look. One module per domain; each fact is a pyinfra FactBase (KeystoneFact).

``FACTS`` maps the name check files use (``module.ClassName``, like pyinfra's own ``server.Hostname``)
to the class.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from .base import KeystoneFact

_SKIP = {"base", "batch"}


def _discover() -> dict[str, type[KeystoneFact]]:
    found: dict[str, type[KeystoneFact]] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name in _SKIP:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, KeystoneFact) and obj.__module__ == module.__name__ and not name.startswith("_"):
                found[f"{info.name}.{name}"] = obj
    return found


FACTS: dict[str, type[KeystoneFact]] = _discover()
