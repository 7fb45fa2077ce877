"""``keystone-checks coverage``: does the catalog cover every section and cause of both guides?

What must be covered is data (``keystone_checks/data/coverage.yaml``: each section and cause the
guides name, with the guide's wording for each cause). Which checks cover it is computed from the
catalog: a check covers a section when its ``guide.document`` / ``guide.section`` equal the entry's,
and a cause when its ``guide.cause`` also matches. For each entry the covering check ids and their
fixes (operation names, the fix playbook, or ``manual``) are printed.

Upstream behaviours (``keystone_checks/data/upstream/*.yaml``, one file per topic): what real
Keystone, NixOS, nixos-anywhere, disko and lanzaboote hosts do that the guides do not say, each
``{id, behaviour, source, keystone: v0.1 | v0.2+ | all, checks: [ids]}`` or ``uncovered: "why"``
instead of ``checks``. They are printed after the guides' entries.

Exit 0 when everything is covered; 1 listing what is not (uncovered sections/causes, ``also`` ids
that do not exist, ``fix: automated`` entries with only manual fixes, section headings -- in the
coverage data or in any check -- that are not verbatim headings of the guide; upstream entries
naming a check that does not exist, with neither ``checks`` nor ``uncovered``, or malformed); 2
when the catalog or the coverage data cannot be read.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from .. import yamlsafe
from ..engine.catalog import DEFAULT_CHECKS_DIR, Check, describe_fix, validate
from ..engine.pipeline import playbook_target
from ..errors import KeystoneChecksError
from ..paths import playbooks_dir

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO.parent / "shared" / "seeds"  # ../shared/seeds next to the repository, when present
PLAYBOOKS_FIX = playbooks_dir() / "fix"  # the checkout's or the wheel's copy


@dataclass
class Entry:
    document: str
    section: str
    cause: str | None = None
    match: list[str] = field(default_factory=list)
    also: list[str] = field(default_factory=list)
    fix: str | None = None
    checks: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.document} > {self.section}" + (f" > {self.cause}" if self.cause else "")


def _norm(text: str) -> str:
    return " ".join(str(text).lower().split())


def guide_text(document: str, seeds: Path | None = None) -> str:
    """The guide's markdown: ../shared/seeds when present, else the copy shipped in the package."""
    for directory in ([seeds] if seeds else []) + [SEEDS]:
        path = directory / document
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return resources.files("keystone_checks").joinpath("data/guides", document).read_text(encoding="utf-8")


def headings(markdown: str) -> set[str]:
    found = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        match = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if match and not in_code:
            found.add(match.group(1))
    return found


def load_requirements(path: Path | None = None) -> list[Entry]:
    text = path.read_text(encoding="utf-8") if path else \
        resources.files("keystone_checks").joinpath("data/coverage.yaml").read_text(encoding="utf-8")
    try:
        data = yamlsafe.load(text, what="coverage data") or {}
    except yaml.YAMLError as exc:
        raise KeystoneChecksError(yamlsafe.describe(exc, str(path or "keystone_checks/data/coverage.yaml"))) from None
    entries: list[Entry] = []
    for document, sections in data.items():
        for item in sections:
            section = item["section"]
            causes = item.get("causes") or []
            entries.append(Entry(document, section, also=list(item.get("also", [])), fix=item.get("fix")))
            for cause in causes:
                entries.append(Entry(document, section, cause["name"], match=list(cause.get("match") or [cause["name"]]),
                                     also=list(cause.get("also", [])), fix=cause.get("fix")))
    return entries


def fix_playbooks(directory: Path = PLAYBOOKS_FIX) -> dict[str, list[str]]:
    """check id -> fix playbooks (playbooks/fix/*.py) whose run_fix() names it."""
    found: dict[str, list[str]] = {}
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("*.py")):
        try:
            target = playbook_target(path)
        except KeystoneChecksError:
            continue  # not a fix playbook: nothing it fixes
        for check_id in target.check_ids or []:
            found.setdefault(check_id, []).append(f"playbooks/fix/{path.name}")
    return found


def fixes_of(check: Check, playbooks: dict[str, list[str]]) -> list[str]:
    fix = describe_fix(check)
    if fix.kind == "none":
        return []
    if fix.kind == "manual":
        return ["manual"]
    extra = [fix.playbook] if fix.playbook else []
    return list(fix.ops) + sorted(set(extra + playbooks.get(check.id, [])))


def compute(checks: list[Check], entries: list[Entry], seeds: Path | None = None) -> tuple[list[Entry], list[str]]:
    """Fill each entry's checks/fixes/problems; return (entries, heading problems of the catalog)."""
    by_id = {c.id: c for c in checks}
    playbooks = fix_playbooks()
    heading_cache: dict[str, set[str]] = {}

    def guide_headings(document: str) -> set[str]:
        if document not in heading_cache:
            heading_cache[document] = headings(guide_text(document, seeds))
        return heading_cache[document]

    catalog_problems = []
    for check in checks:
        if check.guide["section"] not in guide_headings(check.guide["document"]):
            catalog_problems.append(f"{check.path}: guide.section {check.guide['section']!r} is not a heading of "
                                    f"{check.guide['document']}")
    for entry in entries:
        if entry.section not in guide_headings(entry.document):
            entry.problems.append(f"section {entry.section!r} is not a heading of {entry.document}")
        matches = {_norm(m) for m in entry.match}
        covering = [c for c in checks if c.guide["document"] == entry.document and c.guide["section"] == entry.section
                    and (entry.cause is None or _norm(c.guide.get("cause", "")) in matches)]
        for check_id in entry.also:
            if check_id not in by_id:
                entry.problems.append(f"also: no check with id {check_id!r}")
            elif by_id[check_id] not in covering:
                covering.append(by_id[check_id])
        entry.checks = [c.id for c in covering]
        fixes: list[str] = []
        for check in covering:
            fixes.extend(f for f in fixes_of(check, playbooks) if f not in fixes)
        entry.fixes = fixes
        if not covering:
            entry.problems.append("no check covers it" + (f" (no check with guide.cause in {entry.match})" if entry.cause else ""))
        elif entry.fix == "automated" and not any(f != "manual" for f in fixes):
            entry.problems.append("needs an automated fix (an operation), only manual remediation found")
    return entries, catalog_problems


UPSTREAM_KEYSTONE = ("v0.1", "v0.2+", "all")
UPSTREAM_KEYS = {"id", "behaviour", "source", "keystone", "checks", "uncovered"}


@dataclass
class Upstream:
    """One upstream behaviour and the checks that cover it (or why none does)."""

    id: str
    behaviour: str
    source: str
    keystone: str
    checks: list[str] = field(default_factory=list)
    uncovered: str | None = None
    file: str = ""
    problems: list[str] = field(default_factory=list)


def upstream_files(directory: Path | None = None) -> list[tuple[str, str]]:
    """(file name, text) of every ``data/upstream/*.yaml``, sorted by name."""
    if directory is not None:
        return [(p.name, p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.yaml"))]
    root = resources.files("keystone_checks").joinpath("data/upstream")
    if not root.is_dir():
        return []
    return sorted((p.name, p.read_text(encoding="utf-8")) for p in root.iterdir() if p.name.endswith(".yaml"))


def load_upstream(directory: Path | None = None) -> list[Upstream]:
    """Every upstream entry; malformed ones are returned with their problems (never raised)."""
    entries: list[Upstream] = []
    for name, text in upstream_files(directory):
        try:
            data = yamlsafe.load(text, what=name)
        except yaml.YAMLError as exc:
            entries.append(Upstream("?", "", "", "", file=name, problems=[f"YAML error: {exc}"]))
            continue
        if not isinstance(data, list):
            entries.append(Upstream("?", "", "", "", file=name, problems=["must be a YAML list of entries"]))
            continue
        for i, item in enumerate(data):
            if not isinstance(item, dict):
                entries.append(Upstream(f"#{i}", "", "", "", file=name, problems=[f"entry {i} is not a mapping"]))
                continue
            entry = Upstream(str(item.get("id", f"#{i}")), str(item.get("behaviour", "")), str(item.get("source", "")),
                             str(item.get("keystone", "")), file=name)
            checks = item.get("checks")
            entry.checks = [str(c) for c in checks] if isinstance(checks, list) else []
            entry.uncovered = item.get("uncovered")
            unknown = sorted(set(item) - UPSTREAM_KEYS)
            if unknown:
                entry.problems.append(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(UPSTREAM_KEYS))})")
            for key in ("id", "behaviour", "source", "keystone"):
                if not item.get(key):
                    entry.problems.append(f"missing {key!r}")
            if item.get("id") and not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", str(item["id"])):
                entry.problems.append("id must be short kebab-case")
            if item.get("keystone") and item["keystone"] not in UPSTREAM_KEYSTONE:
                entry.problems.append(f"keystone must be one of {', '.join(UPSTREAM_KEYSTONE)}")
            if checks is not None and not isinstance(checks, list):
                entry.problems.append("checks must be a list of check ids")
            if not entry.checks and not entry.uncovered:
                entry.problems.append("neither checks nor uncovered: name the checks, or say why none covers it")
            if entry.checks and entry.uncovered:
                entry.problems.append("both checks and uncovered: keep one")
            entries.append(entry)
    seen: dict[str, str] = {}
    for entry in entries:
        if entry.id in seen and not entry.id.startswith(("#", "?")):
            entry.problems.append(f"duplicate id (also in {seen[entry.id]})")
        seen.setdefault(entry.id, entry.file)
    return entries


def check_upstream(checks: list[Check], entries: list[Upstream]) -> list[Upstream]:
    known = {c.id for c in checks}
    for entry in entries:
        for check_id in entry.checks:
            if check_id not in known:
                entry.problems.append(f"no check with id {check_id!r}")
    return entries


def render_upstream(entries: list[Upstream]) -> str:
    if not entries:
        return ""
    lines = ["", "Upstream behaviours (keystone_checks/data/upstream/*.yaml)"]
    for entry in entries:
        mark = "MISS" if entry.problems else ("ok  " if entry.checks else "gap ")
        lines.append(f"{mark} [{entry.keystone or '?'}] {entry.id}: {entry.behaviour}")
        lines.append(f"       source: {entry.source}  ({entry.file})")
        if entry.checks:
            lines.append(f"       checks: {', '.join(entry.checks)}")
        if entry.uncovered:
            lines.append(f"       uncovered: {entry.uncovered}")
        for problem in entry.problems:
            lines.append(f"       !! {problem}")
    covered = sum(1 for e in entries if e.checks and not e.problems)
    gaps = sum(1 for e in entries if e.uncovered and not e.problems)
    bad = sum(1 for e in entries if e.problems)
    lines.append(f"{covered}/{len(entries)} upstream behaviours covered by checks; {gaps} documented as uncovered"
                 + (f"; {bad} with problems" if bad else ""))
    return "\n".join(lines) + "\n"


def render(entries: list[Entry], catalog_problems: list[str], total: int | None = None) -> str:
    lines = []
    for entry in entries:
        mark = "ok  " if not entry.problems else "MISS"
        indent = "    " if entry.cause else ""
        name = entry.cause if entry.cause else f"[{entry.document}] {entry.section}"
        lines.append(f"{mark} {indent}{name}")
        if entry.checks:
            lines.append(f"     {indent}  checks: {', '.join(entry.checks)}")
            lines.append(f"     {indent}  fixes:  {', '.join(entry.fixes) or 'none'}")
        for problem in entry.problems:
            lines.append(f"     {indent}  !! {problem}")
    uncovered = [e for e in entries if e.problems]
    for problem in catalog_problems:
        lines.append(f"!! {problem}")
    total = len(entries) if total is None else total
    lines.append(f"{total - len(uncovered)}/{total} sections and causes covered"
                 + (f"; {len(uncovered)} not: " + "; ".join(e.label for e in uncovered) if uncovered else "")
                 + (f"; {len(catalog_problems)} check heading problem(s)" if catalog_problems else ""))
    return "\n".join(lines) + "\n"


def uncovered(checks_dir: Path | None = None, requirements: Path | None = None) -> list[str]:
    """Labels of what is not covered (plus heading problems); empty when the catalog is complete."""
    checks, problems = validate([checks_dir or DEFAULT_CHECKS_DIR])
    if problems:
        raise ValueError("the check catalog is broken; run `keystone-checks validate`")
    entries, catalog_problems = compute(checks, load_requirements(requirements))
    upstream = check_upstream(checks, load_upstream())
    return ([f"{e.label}: {'; '.join(e.problems)}" for e in entries if e.problems] + catalog_problems
            + [f"upstream {u.file} {u.id}: {'; '.join(u.problems)}" for u in upstream if u.problems])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="keystone-checks coverage",
                                     description="Which checks and fixes cover each section and cause of the guides.")
    parser.add_argument("--checks", help="catalog directory (default: the repository's checks/)")
    parser.add_argument("--requirements", help="coverage data (default: keystone_checks/data/coverage.yaml)")
    parser.add_argument("--seeds", help="directory holding the guides (default: ../shared/seeds, else the packaged copies)")
    parser.add_argument("--upstream", help="directory of upstream behaviour files (default: keystone_checks/data/upstream)")
    parser.add_argument("--uncovered", action="store_true", help="print only what is not covered")
    args = parser.parse_args(argv)
    try:
        checks, problems = validate([Path(args.checks)] if args.checks else [DEFAULT_CHECKS_DIR])
        if problems:
            for problem in problems:
                print(problem, file=sys.stderr)
            print("keystone-checks coverage: the check catalog is broken; run `keystone-checks validate`", file=sys.stderr)
            return 2
        entries = load_requirements(Path(args.requirements) if args.requirements else None)
        entries, catalog_problems = compute(checks, entries, Path(args.seeds) if args.seeds else None)
        upstream = check_upstream(checks, load_upstream(Path(args.upstream) if args.upstream else None))
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        print(f"keystone-checks coverage: cannot read the coverage data or guides: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    shown = [e for e in entries if e.problems] if args.uncovered else entries
    sys.stdout.write(render(shown, catalog_problems, total=len(entries)))
    sys.stdout.write(render_upstream([u for u in upstream if u.problems or u.uncovered] if args.uncovered else upstream))
    return 1 if any(e.problems for e in entries) or catalog_problems or any(u.problems for u in upstream) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
