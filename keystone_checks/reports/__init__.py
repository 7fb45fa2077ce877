"""Report writers: each turns the report dict (see keystone_checks/engine/outcome.py) into one format.

One interface: a writer module has ``write(report: dict, options: Options = DEFAULT) -> str``
(the console too). ``WRITERS`` names them for ``--report FORMAT[:PATH]``; ``write_reports`` writes each to
its path atomically (regular files
only) or to stdout (``-``), attempting every format even when one fails.
Writers read only the engine's results: no fact evidence carries key material.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Options:
    """How a writer renders. Only the console reads most of these; every writer takes them, so
    callers treat all formats alike (``writer(name)(report, options)``)."""

    colour: bool = False     # ANSI colour: only for a terminal (see ``colour_wanted``)
    verbose: bool = False    # also the checks skipped behind a dependency or not for the host's role
    quiet: bool = False      # only what fails (failing, error, hosts not checked), the roll-up and totals
    own_exit: bool = True    # this process exits with the report's code (not under the pyinfra CLI)
    width: int | None = None  # wrap at this many columns (None: the terminal's, else 100)


DEFAULT = Options()


@dataclass(frozen=True)
class Format:
    module: str       # keystone_checks.reports.<module> with write(report, options) -> str
    extension: str    # default file extension
    description: str  # for --help


# The one table of formats: --report FORMAT[:PATH], the CLI help and the default extensions read it.
WRITERS: dict[str, Format] = {
    "console": Format("console", "txt", "the table for a terminal (the default on stdout)"),
    "json": Format("json_report", "json", "the report itself (schema/report.schema.json)"),
    "junit": Format("junit", "xml", "JUnit XML for CI"),
    "prometheus": Format("prometheus", "prom", "node_exporter textfile"),
    "nagios": Format("nagios", "txt", "one Nagios plugin line"),
    "html": Format("html", "html", "self-contained fleet page"),
}


def writer(name: str) -> Callable[..., str]:
    """The ``write(report, options=DEFAULT) -> str`` function of format ``name``."""
    if name not in WRITERS:
        raise KeyError(f"unknown report format '{name}' (known: {', '.join(WRITERS)})")
    return importlib.import_module(f"{__name__}.{WRITERS[name].module}").write


def colour_wanted(stream: Any, no_color: bool = False) -> bool:
    """ANSI colour only on a terminal, and never with ``--no-color`` or NO_COLOR set to anything
    non-empty (https://no-color.org)."""
    if no_color or os.environ.get("NO_COLOR", ""):
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # closed or not a file
        return False


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``FORMAT[:PATH]`` -> (format, path or None for stdout). Raises ValueError for unknown formats."""
    name, _, path = spec.partition(":")
    name = name.strip().lower()
    if name not in WRITERS:
        raise ValueError(f"unknown report format '{name}' in --report {spec} (known: {', '.join(WRITERS)})")
    return name, (path or None)


def write_reports(report: dict[str, Any], specs: list[tuple[str, str | None]], stdout=None,
                  options: Options | None = None) -> tuple[list[tuple[str, str]], list[str]]:
    """Write each (format, path): to a regular file atomically, or to stdout when path is None or '-'.
    ``options.colour`` applies to stdout only: a file never gets escape sequences.

    Every format is attempted even when one fails. Returns ``(written, failures)``: the
    ``(format, path)`` pairs written and one message per failure (the caller exits UNKNOWN).
    """
    from ..engine.outcome import ReportWriteError, write_atomic

    stdout = stdout or sys.stdout
    options = options or Options()
    written: list[tuple[str, str]] = []
    failures: list[str] = []
    for name, path in specs:
        to_stdout = path is None or path == "-"
        try:
            text = writer(name)(report, options if to_stdout else replace(options, colour=False))
        except Exception as exc:  # noqa: BLE001 - one broken writer must not cost the other formats
            failures.append(f"report ({name}): cannot render: {type(exc).__name__}: {exc}")
            continue
        if path is None or path == "-":
            try:
                stdout.write(text)
                stdout.flush()
            except OSError as exc:  # stdout is /dev/full, a closed pipe, ...
                failures.append(f"report ({name}): cannot write to stdout ({exc.strerror or exc})")
            continue
        try:
            written.append((name, str(write_atomic(path, text))))
        except ReportWriteError as exc:
            failures.append(f"report ({name}): {exc}")
    return written, failures


def emit_reports(report: dict[str, Any], specs: list[tuple[str, str | None]], stdout=None, stderr=None,
                 options: Options | None = None) -> bool:
    """``write_reports`` plus one line per report written or failed on ``stderr``; True when all were written.

    Shared by ``keystone-checks run``/``merge`` and the playbooks' at-exit recorder (frontends/playbook.py).
    """
    stderr = stderr or sys.stderr
    written, failures = write_reports(report, specs, stdout, options)
    for name, path in written:
        stderr.write(f"report ({name}): {path}\n")
    for failure in failures:
        stderr.write(f"keystone-checks: {failure}\n")
    return not failures
