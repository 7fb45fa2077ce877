"""Report writers: each turns the report dict (see keystone_checks/engine/outcome.py) into one format.

One small interface: a writer module has ``write(report: dict) -> str``. ``WRITERS`` names them for
``--report FORMAT[:PATH]``; ``write_reports`` writes each to its path atomically (regular files
only) or to stdout (``-``), attempting every format even when one fails.
Writers read only the engine's results: no fact evidence carries key material.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

# format -> (module, default file extension)
WRITERS: dict[str, tuple[str, str]] = {
    "console": ("console", "txt"),
    "json": ("json_report", "json"),
    "junit": ("junit", "xml"),
    "prometheus": ("prometheus", "prom"),
    "nagios": ("nagios", "txt"),
    "html": ("html", "html"),
}


def writer(name: str) -> Callable[[dict[str, Any]], str]:
    if name not in WRITERS:
        raise KeyError(f"unknown report format '{name}' (known: {', '.join(WRITERS)})")
    module = importlib.import_module(f"{__name__}.{WRITERS[name][0]}")
    if hasattr(module, "write"):
        return module.write
    return lambda report: module.render(report, colour=False)  # console.py: render(report, colour)


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``FORMAT[:PATH]`` -> (format, path or None for stdout). Raises ValueError for unknown formats."""
    name, _, path = spec.partition(":")
    name = name.strip().lower()
    if name not in WRITERS:
        raise ValueError(f"unknown report format '{name}' in --report {spec} (known: {', '.join(WRITERS)})")
    return name, (path or None)


def write_reports(report: dict[str, Any], specs: list[tuple[str, str | None]], stdout=None
                  ) -> tuple[list[tuple[str, str]], list[str]]:
    """Write each (format, path): to a regular file atomically, or to stdout when path is None or '-'.

    Every format is attempted even when one fails. Returns ``(written, failures)``: the
    ``(format, path)`` pairs written and one message per failure (the caller exits UNKNOWN).
    """
    from ..engine.outcome import ReportWriteError, write_atomic

    stdout = stdout or sys.stdout
    written: list[tuple[str, str]] = []
    failures: list[str] = []
    for name, path in specs:
        try:
            text = writer(name)(report)
        except Exception as exc:  # noqa: BLE001 - one broken writer must not cost the other formats
            failures.append(f"report ({name}): cannot render: {type(exc).__name__}: {exc}")
            continue
        if path in (None, "-"):
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


def emit_reports(report: dict[str, Any], specs: list[tuple[str, str | None]], stdout=None, stderr=None) -> bool:
    """``write_reports`` plus one line per report written or failed on ``stderr``; True when all were written.

    Shared by ``keystone-checks run``/``merge`` and the playbooks' at-exit recorder (runner.py).
    """
    stderr = stderr or sys.stderr
    written, failures = write_reports(report, specs, stdout)
    for name, path in written:
        stderr.write(f"report ({name}): {path}\n")
    for failure in failures:
        stderr.write(f"keystone-checks: {failure}\n")
    return not failures
