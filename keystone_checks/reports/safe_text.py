"""Text from hosts is data: what the report writers do to it before a terminal, an XML parser, a
browser or a monitoring system reads it.

A host controls much of a report's text (probe output reaches messages, found values, evidence,
host errors). Raw, a byte like ESC rewrites the operator's terminal (``\\x1b]0;title\\x07``,
``\\x1b[2J``), NUL or ESC make JUnit XML invalid, a newline forges a line in a one-line format.
Each writer maps every string of the report through :func:`scrub` first:

- :func:`visible`: C0 controls, DEL and C1 controls become visible escapes (``\\x1b``); newline
  and tab stay unless ``newlines=False`` (one-line formats);
- :func:`xml_text`: additionally what XML 1.0 cannot hold at all (``\\ufffe``, ``\\uffff``, lone
  surrogates) becomes an escape.

Example::

    >>> visible("ONLINE\\x1b[2J")
    'ONLINE\\\\x1b[2J'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_AND_NEWLINES = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NOT_XML = re.compile(r"[\ud800-\udfff\ufffe\uffff]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, newlines: bool = True) -> str:
    """``text`` with control characters as visible escapes (newline and tab kept when ``newlines``)."""
    return (_CONTROL if newlines else _CONTROL_AND_NEWLINES).sub(_escape, text)


def xml_text(text: str) -> str:
    """``text`` an XML 1.0 document can hold: :func:`visible`, and no non-characters or surrogates."""
    return _NOT_XML.sub(_escape, visible(text))


def one_line(text: str) -> str:
    return visible(text, newlines=False)


def scrub(value: Any, clean: Callable[[str], str] = visible) -> Any:
    """A copy of ``value`` (a report, or any part of one) with every string, keys included, cleaned."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {scrub(k, clean): scrub(v, clean) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, clean) for v in value]
    return value
