"""Host-data templates in check files (Jinja2).

A template that is exactly one name, ``"{{ disk }}"``, becomes the host's value itself (a str, an
int, a list), so ``expect`` schemas can say ``minimum: "{{ min_disk_bytes }}"``; anything else
renders to a string. (Jinja's NativeEnvironment was rejected: it literal-evals strings, so a pool
named "007" would become the integer 7.) Undefined names raise instead of rendering empty:
a silent empty device path would be the worst possible default.
"""

from __future__ import annotations

from typing import Any

import re

from jinja2 import Environment, StrictUndefined, meta
from jinja2.exceptions import TemplateError, UndefinedError
_ENV = Environment(undefined=StrictUndefined, autoescape=False)
_SINGLE_NAME = re.compile(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")


class TemplateProblem(Exception):
    """A template could not be parsed or rendered; the message names the key."""


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def variables(value: str) -> set[str]:
    """Names a template reads; raises TemplateProblem on a syntax error."""
    try:
        return meta.find_undeclared_variables(_ENV.parse(value))
    except TemplateError as exc:
        raise TemplateProblem(f"template {value!r}: {exc}") from None


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render every template string inside ``value`` (dicts and lists are walked)."""
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    if not is_template(value):
        return value
    single = _SINGLE_NAME.match(value)
    if single:
        name = single.group(1)
        if name not in context:
            raise TemplateProblem(f"'{name}' is undefined (host data key missing for template {value!r})")
        return context[name]
    try:
        return _ENV.from_string(value).render(context)
    except UndefinedError as exc:
        raise TemplateProblem(f"{exc} (host data key missing for template {value!r})") from None
    except TemplateError as exc:
        raise TemplateProblem(f"template {value!r}: {exc}") from None


def walk_templates(value: Any):
    """Yield every template string in a nested structure."""
    if isinstance(value, dict):
        for v in value.values():
            yield from walk_templates(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk_templates(v)
    elif is_template(value):
        yield value
