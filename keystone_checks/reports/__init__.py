"""Report writers: each turns the report dict (see keystone_checks/report.py) into one format.

One small interface: a writer module has ``write(report: dict) -> str``. ``WRITERS`` names them for
``--report FORMAT[:PATH]``; ``write_reports`` writes each to its path atomically (or stdout).
Writers read only the engine's results: no fact evidence carries key material.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable

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


def write_reports(report: dict[str, Any], specs: list[tuple[str, str | None]], stdout=None) -> list[str]:
    """Write each (format, path): to the path atomically, or to stdout when path is None or '-'."""
    from ..report import write_atomic

    stdout = stdout or sys.stdout
    written = []
    for name, path in specs:
        text = writer(name)(report)
        if path in (None, "-"):
            stdout.write(text)
        else:
            written.append(str(write_atomic(path, text)))
    return written
