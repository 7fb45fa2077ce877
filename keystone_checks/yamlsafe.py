"""YAML from users (check files, guide-coverage data, diagnose corpora) without the YAML bombs.

``yaml.safe_load`` constructs no objects, but it still expands aliases: a self-referencing alias
(``a: &a [*a]``) becomes a cyclic structure (RecursionError when walked), and a "billion laughs"
file (nine anchors each aliasing the previous one ten times) grows to gigabytes. libyaml's
composer also crashes the process (SIGSEGV) on deeply nested flow collections (``[[[[...``).

No file the tool reads has a use for aliases, so they are refused outright, and nesting is bounded,
both from the parser's event stream before anything is composed (that stream is flat: it
neither recurses nor expands). The error carries the line, so it reads ``file:line: ...``.

Example::

    data = yamlsafe.load(path.read_text(), what="check files")   # raises YamlRefused
"""

from __future__ import annotations

from typing import Any

import yaml

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~10x faster parsing
MAX_DEPTH = 64  # check files nest about 8 deep; libyaml's composer crashes around 10^5


class YamlRefused(yaml.MarkedYAMLError):
    """A construct refused before composing: an alias, or nesting deeper than MAX_DEPTH."""


def refuse_bombs(text: str, what: str = "this file") -> None:
    """Raise YamlRefused (with the line) for any alias or nesting deeper than MAX_DEPTH in ``text``.

    YAML syntax errors are raised as the parser's own ``yaml.YAMLError``.
    """
    depth = 0
    for event in yaml.parse(text, Loader=LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise YamlRefused(problem=f"alias *{event.anchor} is not allowed in {what} (aliases can expand "
                                      "without bound or refer to themselves): write the value out in full",
                              problem_mark=event.start_mark)  # type: ignore[arg-type] # the C loader's Mark
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlRefused(problem=f"nested deeper than {MAX_DEPTH} levels: not a plausible {what} entry",
                                  problem_mark=event.start_mark)  # type: ignore[arg-type] # the C loader's Mark
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def compose(text: str, what: str = "this file") -> yaml.Node | None:
    """``yaml.compose`` after ``refuse_bombs``: the node tree, with line marks."""
    refuse_bombs(text, what)
    return yaml.compose(text, Loader=LOADER)


def load(text: str, what: str = "this file") -> Any:
    """``yaml.safe_load`` after ``refuse_bombs``."""
    refuse_bombs(text, what)
    return yaml.load(text, Loader=LOADER)


def describe(exc: yaml.YAMLError, where: str) -> str:
    """``where:line: reason`` for any YAML error (syntax or refused)."""
    mark = getattr(exc, "problem_mark", None)
    loc = f"{where}:{mark.line + 1}" if mark else where
    reason = getattr(exc, "problem", None) or str(exc)
    kind = "" if isinstance(exc, YamlRefused) else "YAML syntax error: "
    return f"{loc}: {kind}{reason}"
