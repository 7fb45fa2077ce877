"""SSH: root's authorized_keys, validated line by line with ``ssh-keygen -l`` (public keys only)."""

from __future__ import annotations

import re

from ..errors import UnparseableOutput
from .base import KeystoneFact, parse_int, shell_quote

_FP = re.compile(r"^(\d+)\s+(\S+)\s+(.*?)\s*\(([A-Z0-9-]+)\)\s*$")


class AuthorizedKeys(KeystoneFact):
    """Root's authorized_keys: every non-comment line must be one complete public key on one line
    (a key broken over lines or truncated fails ``ssh-keygen -l -f -``), and, when host data
    ``authorized_key`` is set, that key (compared by fingerprint) must be among them.

    Arguments:
        path: the authorized_keys file (host data ``authorized_keys_file``)
        expected_key: public key that must be present; ``""`` = any valid key will do

    Example: ``{"exists": true, "keys": [{"line": 1, "bits": 256, "fingerprint": "SHA256:...",
    "comment": "op@laptop", "type": "ED25519"}], "invalid_lines": [3], "expected_fingerprint":
    "SHA256:...", "contains_expected": true}``
    """

    requires = "ssh-keygen"

    def command(self, path, expected_key=""):
        q = shell_quote(path)
        lines = [f"if [ ! -e {q} ]; then echo missing; exit 0; fi"]
        if expected_key:
            lines.append(f"printf '%s\\n' {shell_quote(expected_key)} | ssh-keygen -l -f - 2>/dev/null | sed 's/^/expected /' "
                         "|| echo 'expected invalid'")
        lines.append(
            "n=0; while IFS= read -r l || [ -n \"$l\" ]; do n=$((n+1)); "
            "case \"$l\" in ''|'#'*) continue;; esac; "
            "fp=$(printf '%s\\n' \"$l\" | ssh-keygen -l -f - 2>/dev/null) && echo \"key $n $fp\" || echo \"bad $n\"; "
            f"done < {q}")
        return "; ".join(lines)

    def process(self, output):
        if output and output[0].strip() == "missing":
            return {"exists": False, "keys": [], "invalid_lines": [], "expected_fingerprint": None,
                    "expected_key_valid": None, "contains_expected": None}
        keys, invalid, expected, expected_given = [], [], None, False
        for line in output:
            if line.startswith("expected "):
                expected_given = True
                rest = line[len("expected "):]
                if rest.strip() != "invalid":
                    m = _FP.match(rest)
                    if not m:
                        raise UnparseableOutput(f"ssh-keygen -l: unexpected {rest!r}")
                    expected = m.group(2)
            elif line.startswith("key "):
                parts = line.split(" ", 2)
                if len(parts) != 3:
                    raise UnparseableOutput(f"unexpected key line {line!r}")
                m = _FP.match(parts[2])
                if not m:
                    raise UnparseableOutput(f"ssh-keygen -l: unexpected {parts[2]!r}")
                keys.append({"line": parse_int(parts[1], "line number"), "bits": int(m.group(1)),
                             "fingerprint": m.group(2), "comment": m.group(3), "type": m.group(4)})
            elif line.startswith("bad "):
                invalid.append(parse_int(line[4:], "line number"))
            elif line.strip():
                raise UnparseableOutput(f"unexpected line {line!r}")
        contains = None
        if expected_given:
            contains = expected is not None and any(k["fingerprint"] == expected for k in keys)
        return {"exists": True, "keys": keys, "invalid_lines": invalid, "expected_fingerprint": expected,
                "expected_key_valid": (expected is not None) if expected_given else None,
                "contains_expected": contains}
