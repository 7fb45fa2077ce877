"""Narrowing a run to some checks: ``--checks ID,ID``, ``--tags T,T``, ``--severity S``.

The same rules for ``keystone-checks run``/``list`` and for the playbooks (host data ``checks``,
``tags``, ``severity``, e.g. ``pyinfra INV playbooks/zfs.py --data checks=pool-healthy``):

* a check is selected when it is in the run's list (the phase's checks, or a fix playbook's), its id
  is among ``checks`` (when given), it carries one of ``tags`` (when given) and its severity is at
  least ``severity`` (when given: ``warning`` keeps warning and critical). Filters combine with AND.
* a check's tags are its domain (the directory under ``checks/``: zfs, luks, ...) plus its ``tags:``.
* checks a selected check depends on (transitively) still run, as **gates**: a dependency that did
  not pass must still stop its dependent, or the dependent would be judged on a host where it cannot
  be. Their results carry ``gate_for`` (the selected checks waiting on them) and count like any
  other result: a failing gate is a real finding on that host and the reason its dependent did not run.
* an unknown check id, tag or severity is an error naming the bad value and the valid ones; so is
  a check id outside the run's list, and a selection that selects nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import KeystoneChecksError
from .hostdata import SEVERITIES, split_names


class SelectionError(KeystoneChecksError):
    """A selection names something that does not exist, or selects nothing."""


@dataclass
class Selection:
    checks: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    severity: str = ""

    @classmethod
    def from_values(cls, checks: Any = None, tags: Any = None, severity: Any = None) -> Selection:
        """From command-line or host-data values: lists, or strings separated by ','."""
        return cls(split_names(checks or []), split_names(tags or []), str(severity or "").strip())

    def __bool__(self) -> bool:
        return bool(self.checks or self.tags or self.severity)

    def describe(self) -> str:
        parts = []
        if self.checks:
            parts.append("checks " + ",".join(self.checks))
        if self.tags:
            parts.append("tags " + ",".join(self.tags))
        if self.severity:
            parts.append(f"severity >= {self.severity}")
        return "; ".join(parts)


def domain_of(check) -> str | None:
    """The directory a check file sits in (checks/zfs/x.yaml -> zfs), or None for a flat catalog."""
    from .hostdata import _NAME

    parent = Path(check.path).parent.name if check.path else ""
    return parent if parent != "checks" and _NAME.fullmatch(parent) else None


def tags_of(check) -> list[str]:
    domain = domain_of(check)
    return ([domain] if domain else []) + [t for t in getattr(check, "tags", []) or [] if t != domain]


def validate(selection: Selection, catalog: list, candidates: list | None = None, what: str = "") -> None:
    """Raise SelectionError naming each unknown id, tag or severity (with the valid choices), and
    each id that exists but is not among ``candidates`` (the phase's or playbook's checks)."""
    by_id = {c.id: c for c in catalog}
    where = f"{what}: " if what else ""
    unknown = [i for i in selection.checks if i not in by_id]
    if unknown:
        raise SelectionError(f"{where}unknown check id(s) {', '.join(unknown)}; valid ids: "
                             f"{', '.join(sorted(by_id))} (keystone-checks list)")
    all_tags = sorted({t for c in catalog for t in tags_of(c)})
    bad_tags = [t for t in selection.tags if t not in all_tags]
    if bad_tags:
        raise SelectionError(f"{where}unknown tag(s) {', '.join(bad_tags)}; valid tags: {', '.join(all_tags)}")
    if selection.severity and selection.severity not in SEVERITIES:
        raise SelectionError(f"{where}unknown severity {selection.severity!r}; valid: {', '.join(SEVERITIES)} "
                             "(the least severe kept: warning keeps warning and critical)")
    if candidates is not None:
        ids = {c.id for c in candidates}
        outside = [i for i in selection.checks if i not in ids]
        if outside:
            shown = "; ".join(f"{i} is in {', '.join(by_id[i].phases)}" for i in outside)
            raise SelectionError(f"{where}check(s) {', '.join(outside)} not part of this run ({shown}); "
                                 "run the phase that has them, or pick from `keystone-checks list --phase P`")


def matches(selection: Selection, check) -> bool:
    if selection.checks and check.id not in selection.checks:
        return False
    if selection.tags and not set(selection.tags) & set(tags_of(check)):
        return False
    if selection.severity and SEVERITIES.index(check.severity) > SEVERITIES.index(selection.severity):
        return False
    return True


def narrow(selection: Selection, candidates: list, catalog: list, what: str = "") -> tuple[list, dict[str, list[str]]]:
    """(checks to run in dependency order, {gate id: [selected ids depending on it]}).

    ``candidates`` is the run's list (a phase's checks with their dependencies, in dependency
    order); only its own members are selectable, dependencies come from the whole catalog.
    """
    from .plan import order_by_dependencies

    if not selection:
        return list(candidates), {}
    validate(selection, catalog, candidates, what)
    chosen = [c for c in candidates if matches(selection, c)]
    if not chosen:
        where = f"{what}: " if what else ""
        raise SelectionError(f"{where}the selection ({selection.describe()}) selects no check of this run; "
                             "see `keystone-checks list` with the same --phase/--checks/--tags/--severity")
    by_id = {c.id: c for c in catalog}
    chosen_ids = {c.id for c in chosen}
    gates: dict[str, list[str]] = {}
    for check in chosen:
        stack, seen = list(check.depends_on), set()
        while stack:
            dep = stack.pop()
            if dep in seen or dep not in by_id:
                continue
            seen.add(dep)
            if dep not in chosen_ids:
                gates.setdefault(dep, []).append(check.id)
            stack.extend(by_id[dep].depends_on)
    run = [by_id[i] for i in gates] + chosen
    return order_by_dependencies(sorted(run, key=lambda c: _position(c, candidates, catalog))), gates


def _position(check, candidates: list, catalog: list) -> int:
    order = [c.id for c in candidates] + [c.id for c in catalog]
    return order.index(check.id)


def mark_gates(results: Iterable, gates: dict[str, list[str]]) -> None:
    """Put ``gate_for`` on the results of checks that ran only because a selected check needs them."""
    for result in results:
        if result.check in gates:
            result.gate_for = sorted(gates[result.check])


def from_context(context: dict[str, Any]) -> Selection:
    """The selection host data asks for (``checks``, ``tags``, ``severity``)."""
    return Selection.from_values(context.get("checks"), context.get("tags"), context.get("severity"))
