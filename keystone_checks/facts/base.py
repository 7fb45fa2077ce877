"""The base every keystone fact derives from: a pyinfra ``FactBase`` that also knows how to
read its own exit code and stderr, because the batch runs it as one section of a larger command.

A fact is a pyinfra fact, usable on its own with ``host.get_fact()``; the engine instead runs the
``command()`` of every fact a playbook needs in one remote command (see ``batch.py``) and hands
each fact its own :class:`ProbeOutput`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyinfra.api import FactBase

from ..engine.commands import quote as shell_quote  # noqa: F401 - fact commands quote with the one helper
from ..errors import ProbeFailed, UnparseableOutput

EXIT_TIMEOUT = 124
EXIT_NOT_FOUND = 127
# Not a process exit status: the probe did not run or its section never came back (batch.split_batch,
# engine.gather); its stderr says why.
EXIT_NOT_RUN = -1


@dataclass
class ProbeOutput:
    """What one fact's command did: exit code, stdout and stderr lines. ``truncated``: stdout was
    larger than the batch's limit and is not kept (parsing a cut output could pass wrongly)."""

    exit_code: int
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    truncated: bool = False

    def stderr_text(self, limit: int = 300) -> str:
        text = " ".join(line.strip() for line in self.stderr if line.strip())
        return text[:limit]


class KeystoneFact(FactBase):
    """Base for keystone facts.

    Subclasses define ``command(**args)`` and ``process(lines)`` like any pyinfra fact. They may set:

    - ``requires``: the binary the command needs; missing -> ``error`` ("command not found").
    - ``ok_exit_codes``: exit codes that still carry data (e.g. ``cryptsetup status`` exits 4 when
      the mapping is inactive, which is an answer, not a failure).
    - ``timeout``: seconds before the command is killed (-> ``error``: timed out).
    - ``writes_files``: the command writes files of its own (nix: store database, eval cache), so
      the batch bounds its stdout with a pipe, not a file-size limit that would stop those writes.
    - ``reads_secret``: the command reads the operator's credstore passphrase from the shell
      variable ``$kc_secret`` (``batch.SECRET_VAR``), which the batch fills from its stdin: the
      engine resolves the secret on the controller (host data ``luks_passphrase_file`` /
      ``luks_passphrase_env``) and sends it on the SSH channel's stdin, never in a command line.

    and may override :meth:`parse` when the exit code or stderr is part of the answer.
    """

    abstract = True
    requires: str | None = None
    ok_exit_codes: frozenset[int] = frozenset({0})
    timeout: int = 20
    writes_files: bool = False
    reads_secret: bool = False

    def requires_command(self, *args, **kwargs) -> str | None:  # pyinfra API
        return self.requires

    def parse(self, result: ProbeOutput) -> Any:
        """Turn a probe's output into data, or raise ProbeFailed / UnparseableOutput."""
        self.raise_for_exit(result)
        return self.process(result.stdout)

    def raise_for_exit(self, result: ProbeOutput) -> None:
        if result.exit_code == EXIT_NOT_FOUND and self.requires:
            raise ProbeFailed(f"command '{self.requires}' not found on the host")
        if result.exit_code == EXIT_TIMEOUT:
            detail = result.stderr_text()
            raise ProbeFailed(f"command timed out after {self.timeout}s" + (f" ({detail})" if detail else ""))
        if result.exit_code == EXIT_NOT_RUN:
            raise ProbeFailed(result.stderr_text() or "the probe was not run")
        if result.exit_code not in self.ok_exit_codes:
            detail = result.stderr_text() or "no error output"
            raise ProbeFailed(f"command exited {result.exit_code}: {detail}")


def parse_int(text: str, what: str) -> int:
    """int() that raises the project's UnparseableOutput with context."""
    try:
        return int(text.strip())
    except (ValueError, AttributeError):
        raise UnparseableOutput(f"expected a whole number for {what}, got {text!r}") from None


def split_fields(line: str, count: int, sep: str | None, what: str) -> list[str]:
    parts = line.split(sep) if sep else line.split()
    if len(parts) < count:
        raise UnparseableOutput(f"expected {count} fields in {what} line, got {line!r}")
    return parts


def labelled_lines(output: list[str], required: tuple[str, ...] = ()) -> dict[str, str]:
    """The ``label value`` lines many fact commands print, as {label: value} (the last one wins).

    Raises UnparseableOutput when a ``required`` label is missing.
    """
    fields: dict[str, str] = {}
    for line in output:
        key, _, value = line.partition(" ")
        fields[key] = value.strip()
    if not all(label in fields for label in required):
        wanted = " and ".join(f"'{label}'" for label in required)
        raise UnparseableOutput(f"expected {wanted} lines, got {output[:4]!r}")
    return fields
