"""Host-data placeholders in check files: plain substitution, never code.

A check file may write ``{{ name }}`` where ``name`` is a host data key (keystone_checks/engine/hostdata.py,
plus ``host``). A value that is exactly one placeholder, ``"{{ disk }}"``, becomes the host's value
itself (a str, an int, a list), so ``expect`` schemas can say ``minimum: "{{ min_disk_bytes }}"``;
a placeholder inside a longer string is replaced by ``str(value)`` (``"/mnt{{ boot_mount }}"``).

Nothing else is a template: no ``{% %}`` blocks, filters (``|``), attribute access, calls or
expressions. Check files are contributed and validated in CI, so rendering one must never be able
to run code (a Jinja environment could: ``{{ cycler.__init__.__globals__.os.popen(...) }}``).
Anything that is not a plain placeholder is a ``TemplateProblem`` at validation and at run time.

Example::

    >>> render({"path": "/mnt{{ boot_mount }}", "min": "{{ min_disk_bytes }}"},
    ...        {"boot_mount": "/boot", "min_disk_bytes": 3})
    {'path': '/mnt/boot', 'min': 3}
"""

from __future__ import annotations

import re
from typing import Any

from . import hostdata

# The only template syntax: one identifier between double braces, optional blanks around it.
_PLACEHOLDER = re.compile(r"\{\{[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*\}\}")
# What is left after removing placeholders must not look like template syntax at all.
_LEFTOVER = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}")

# Names a placeholder may use: the host data keys and the host's inventory name.
NAMES = frozenset(hostdata.KEYS) | {"host"}

HOW_TO = ("only plain placeholders `{{ name }}` naming a host data key are allowed (no `{% %}` blocks, "
          "filters, attributes, calls or expressions); write the value literally, or add the key to "
          "keystone_checks/engine/hostdata.py")


class TemplateProblem(Exception):
    """A value is not a plain placeholder template, or names data the host lacks."""


def is_template(value: Any) -> bool:
    """True for a string holding anything that looks like template syntax (valid or not)."""
    return isinstance(value, str) and _LEFTOVER.search(value) is not None


def variables(value: str) -> set[str]:
    """The names ``value``'s placeholders read; raises TemplateProblem for anything else.

    Unknown names are the caller's business (validation reports them against ``NAMES``).
    """
    if _LEFTOVER.search(_PLACEHOLDER.sub("", value)):
        raise TemplateProblem(f"template {value!r} is not allowed: {HOW_TO}")
    return {m.group(1) for m in _PLACEHOLDER.finditer(value)}


def render(value: Any, context: dict[str, Any]) -> Any:
    """Substitute every placeholder inside ``value`` (dicts and lists are walked)."""
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    if not is_template(value):
        return value
    names = variables(value)
    unknown = sorted(names - NAMES)
    if unknown:
        raise TemplateProblem(f"template {value!r} uses unknown host data {unknown} (known keys: see keystone_checks/engine/hostdata.py)")
    missing = sorted(n for n in names if n not in context)
    if missing:
        raise TemplateProblem(f"'{missing[0]}' is undefined (host data key missing for template {value!r})")
    whole = _PLACEHOLDER.fullmatch(value)
    if whole:
        return context[whole.group(1)]
    return _PLACEHOLDER.sub(lambda m: str(context[m.group(1)]), value)


def walk_templates(value: Any, path: tuple = ()):
    """Yield ``(path, template)`` for every template string in a nested structure."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk_templates(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk_templates(v, path + (i,))
    elif is_template(value):
        yield path, value
