"""List the user-facing message strings of a C/C++/shell source file, for curating
keystone_checks/data/messages/*.yaml (a helper for people, not used at run time).

Adjacent C string literals are joined ("a " "b" -> "a b"), escapes \\n \\t \\" are decoded, and only
strings with at least three words are printed, one per line as `path:line: text`.

Usage: git --git-dir=REPO show HEAD:path/file.c | python3 tools/extract_messages.py path/file.c [WORD...]
       (with WORDs, only messages containing one of them, case-insensitive)
"""

from __future__ import annotations

import re
import sys

_LITERALS = re.compile(r'"((?:[^"\\\n]|\\.)*)"(?:\s*"((?:[^"\\\n]|\\.)*)")*')
_ONE = re.compile(r'"((?:[^"\\\n]|\\.)*)"')


def messages(source: str):
    for m in _LITERALS.finditer(source):
        text = "".join(part for part in _ONE.findall(m.group(0)))
        text = text.replace("\\n", "\n").replace("\\t", "\t").replace('\\"', '"').replace("\\\\", "\\")
        if len(re.findall(r"[A-Za-z]{2,}", text)) >= 3:
            yield source.count("\n", 0, m.start()) + 1, text


if __name__ == "__main__":
    path, words = sys.argv[1], [w.lower() for w in sys.argv[2:]]
    for line, text in messages(sys.stdin.read()):
        if not words or any(w in text.lower() for w in words):
            print(f"{path}:{line}: {text!r}")
