"""Shell commands built from parts, so that data can never become code.

Every command an operation runs (and every command it uses to read the host's state) is built
here, from *parts*:

- a ``str`` (or ``int``) part is ONE shell word, always quoted (pyinfra's ``QuoteString``);
- shell syntax (``&&``, ``||``, ``;``, ``|``, redirections, fixed script text) is a :class:`Syntax`
  object: :data:`AND`, :data:`OR`, :data:`THEN`, :data:`PIPE`, :data:`QUIET`, ..., or :func:`sh`
  for a fixed fragment (an awk program, a loop over ``"$variables"``). ``sh()`` takes literal
  text written in this repository only: ``tests/test_safety_quoting.py`` checks, by reading the
  source, that every ``sh()``/``Syntax()`` argument is a constant, and that no operation yields or
  queries a string it pasted together (f-string, ``%``, ``+``, ``.format``);
- data a fixed fragment needs goes into a shell variable with :func:`assign` (quoted) and is used
  as ``"$name"`` in the fragment, or to a tool as a quoted argument (after ``--`` where the tool
  supports it, so a value starting with ``-`` is never an option).

Messages for the operator go through :func:`say_err` / :func:`refuse`: ``printf '%s\\n' 'text' >&2``
with the text quoted as one argument (never pasted into an ``echo '...'``).

**Example:**

.. code:: python

    cmd("zpool", "import", "-N", "--", pool)          # zpool import -N -- 'rpool; touch x'
    cmd("zpool", "list", "-H", "--", pool, QUIET, OR, refuse("no pool", pool))
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from pyinfra.api import QuoteString, StringCommand


class Syntax:
    """Literal shell syntax: an operator, a redirection, or a fixed script fragment written in this
    repository. Never build one from data (the source check in tests/test_safety_quoting.py)."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        if not isinstance(text, str):
            raise TypeError("Syntax takes literal shell text")
        self.text = text

    def __repr__(self) -> str:
        return f"Syntax({self.text!r})"


AND = Syntax("&&")
OR = Syntax("||")
THEN = Syntax(";")
PIPE = Syntax("|")
QUIET = Syntax(">/dev/null 2>&1")
NO_STDERR = Syntax("2>/dev/null")
TO_STDERR = Syntax(">&2")
EXIT_0 = Syntax("exit 0")
EXIT_1 = Syntax("exit 1")

Part = str | int | Syntax | StringCommand

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def sh(text: str) -> Syntax:
    """A fixed fragment of shell script (constant text in this repository, never data)."""
    return Syntax(text)


def quote(value: Any) -> str:
    """One value as one POSIX shell word (for the rare caller that needs the text itself)."""
    return shlex.quote(str(value))


def _bit(part: Part):
    if isinstance(part, Syntax):
        return part.text
    if isinstance(part, StringCommand):
        return part
    if isinstance(part, bool) or not isinstance(part, (str, int)):
        raise TypeError(f"command part must be str, int, Syntax or StringCommand, not {type(part).__name__}")
    return QuoteString(str(part))


def cmd(*parts: Part, **connector_arguments) -> StringCommand:
    """A command from parts: strings and ints are quoted words, Syntax is emitted as written.

    + parts: the words and syntax, in order
    + connector_arguments: pyinfra per-command arguments (e.g. ``_stdin``)

    **Example:** ``cmd("cryptsetup", "close", "--", mapping)``
    """
    return StringCommand(*(_bit(p) for p in parts), **connector_arguments)


def seq(*commands: Part) -> StringCommand:
    """Commands run one after the other (``a; b; c``)."""
    parts: list[Part] = []
    for command in commands:
        if parts:
            parts.append(THEN)
        parts.append(command)
    return cmd(*parts)


def assign(name: str, value: Any) -> StringCommand:
    """``name='value'``: a shell variable holding data, quoted (``name`` is a constant identifier)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a shell variable name: {name!r}")
    return StringCommand(f"{name}=", QuoteString(str(value)), _separator="")


def var(name: str) -> Syntax:
    """``"$name"``: a reference to a variable set with :func:`assign` (double-quoted: one word)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a shell variable name: {name!r}")
    return Syntax(f'"${name}"')


def say_err(*message: Any) -> StringCommand:
    """``printf '%s\\n' 'message' >&2``: the parts joined by spaces, as one quoted argument."""
    return cmd("printf", r"%s\n", " ".join(str(m) for m in message), TO_STDERR)


def fail(*message: Any) -> StringCommand:
    """``{ printf '%s\\n' 'message' >&2; exit 1; }``: say why, then fail."""
    return cmd(Syntax("{"), say_err(*message), THEN, EXIT_1, THEN, Syntax("}"))


def refuse(*message: Any) -> StringCommand:
    """:func:`fail` with ``refusing:`` in front of the message."""
    return fail("refusing:", *message)


def text(command: Any) -> str:
    """The shell text of a command (raw, for running or comparing)."""
    if isinstance(command, StringCommand):
        return command.get_raw_value()
    return str(command)
