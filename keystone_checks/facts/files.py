"""Files and directories: existence, type, size, mode (never their contents: key files stay unread)."""

from __future__ import annotations

from ..errors import UnparseableOutput
from .base import KeystoneFact, parse_int, shell_quote


class PathInfo(KeystoneFact):
    """Whether a path exists, and its type, size, octal mode and owner (``stat -L``).

    Arguments:
        path: absolute path

    Example: ``{"exists": true, "type": "regular file", "size": 32, "mode": "600", "owner": "root"}``
    """

    requires = "stat"

    def command(self, path):
        q = shell_quote(path)
        return f"if [ -e {q} ]; then stat -L -c '%F|%s|%a|%U' {q}; else echo missing; fi"

    def process(self, output):
        line = output[0].strip() if output else ""
        if line == "missing":
            return {"exists": False, "type": None, "size": None, "mode": None, "owner": None}
        parts = line.split("|")
        if len(parts) != 4:
            raise UnparseableOutput(f"stat: expected 'type|size|mode|owner', got {line!r}")
        return {"exists": True, "type": parts[0], "size": parse_int(parts[1], "stat size"),
                "mode": parts[2], "owner": parts[3]}
