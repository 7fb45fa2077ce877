"""Load and validate check files: ``checks/**/*.yaml`` -> ``Check`` objects.

Every problem found is reported as ``path:line: what is wrong``; nothing here lets a traceback
through. Validation goes beyond the JSON Schema: duplicate ids, duplicate YAML keys, unknown facts
and operations, fact arguments the fact does not take, broken regexes, templates naming host data
that does not exist, ``expect`` that is not a valid JSON Schema, unknown or cyclic ``depends_on``.
"""

from __future__ import annotations

import difflib
import inspect
import json
import os
import re
from dataclasses import asdict, dataclass, field
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from .. import yamlsafe
from ..errors import CatalogError, CheckFileError
from ..paths import checks_dir, playbooks_dir
from . import hostdata, shapes, templating

DEFAULT_CHECKS_DIR = checks_dir()

# Placeholder host data used to validate templates and expect schemas at load time.
_SAMPLE_CONTEXT = {k.name: (k.default if k.default is not None else k.types[0]()) for k in hostdata.KEYS.values()}
_SAMPLE_CONTEXT.update(role="installer", disk="/dev/vda", host="example")


@dataclass(frozen=True)
class Gather:
    """One named value a check gathers: ``fact`` (``module.ClassName`` under keystone_checks.facts)
    called with ``args`` (templates over host data)."""

    fact: str
    args: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: Gather | dict[str, Any]) -> Gather:
        return spec if isinstance(spec, Gather) else cls(fact=spec["fact"], args=dict(spec.get("args") or {}))


@dataclass(frozen=True)
class Step:
    """One operation of an automated fix: ``op`` (``module.function`` or ``pyinfra:module.function``)."""

    op: str
    args: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: Step | dict[str, Any]) -> Step:
        return spec if isinstance(spec, Step) else cls(op=spec["op"], args=dict(spec.get("args") or {}))


@dataclass(frozen=True)
class Fix:
    """How a failing check is fixed: automated ``steps`` with a ``risk``, or ``manual`` text."""

    risk: str | None = None
    summary: str = ""
    steps: tuple[Step, ...] = ()
    manual: str | None = None
    playbook: str | None = None

    @classmethod
    def of(cls, spec: Fix | dict[str, Any] | None) -> Fix | None:
        if spec is None or isinstance(spec, Fix):
            return spec
        return cls(risk=spec.get("risk"), summary=spec.get("summary", ""),
                   steps=tuple(Step.of(s) for s in spec.get("steps", ())),
                   manual=spec.get("manual"), playbook=spec.get("playbook"))

    @property
    def is_manual(self) -> bool:
        return self.manual is not None

    @property
    def ops(self) -> list[str]:
        return [step.op for step in self.steps]


@dataclass(frozen=True)
class FixDescription:
    """What an operator reads about a check's fix, the same in ``show``, docs, diagnose, coverage and
    reports: ``kind`` is "none", "manual" or "automated"."""

    kind: str
    text: str                      # manual text (whitespace folded), or the summary; "" when none
    risk: str | None = None
    ops: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    playbook: str | None = None
    command: str | None = None     # how to run it: the fix playbook, else `keystone-checks run --fix`


def describe_fix(check: Check) -> FixDescription:
    """The one description of ``check``'s fix (summary, risk, steps, the command that runs it)."""
    fix = Fix.of(check.fix)  # a Check's is typed; a test's stand-in may carry the YAML dict
    if fix is None:
        return FixDescription("none", f"no automatic fix; see the guide section and `keystone-checks show {check.id}`")
    if fix.is_manual:
        return FixDescription("manual", " ".join((fix.manual or "").split()))
    if fix.playbook:
        command = f"pyinfra INVENTORY {fix.playbook} --dry   # then: pyinfra -y INVENTORY {fix.playbook}"
    else:
        command = f"keystone-checks run {check.phases[0]} -i INVENTORY --fix --dry   # then without --dry"
    return FixDescription("automated", fix.summary, risk=fix.risk, ops=tuple(fix.ops), steps=fix.steps,
                          playbook=fix.playbook, command=command)


@dataclass
class Check:
    id: str
    title: str
    severity: str
    phases: list[str]
    roles: list[str]
    guide: dict[str, str]
    why: str
    gather: dict[str, Gather]
    expect: dict[str, Any]
    symptoms: list[Any] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)
    requires_data: list[str | list[str]] = field(default_factory=list)  # a list entry: any one of its keys
    applies_when: dict[str, Any] | None = None
    fix: Fix | None = None
    prevention: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # extra selection tags; selection.tags_of adds the domain
    path: str = ""

    def __post_init__(self) -> None:
        # built from YAML (plain dicts) or by code and tests (dicts or the typed parts)
        self.gather = {name: Gather.of(spec) for name, spec in (self.gather or {}).items()}
        self.fix = Fix.of(self.fix)

    def to_data(self) -> dict[str, Any]:
        """The check as plain data again (the catalog cache stores this)."""
        data = asdict(self)
        data["gather"] = {name: asdict(g) for name, g in self.gather.items()}
        if self.fix is not None:
            data["fix"] = {k: v for k, v in asdict(self.fix).items() if v not in (None, "", ())}
        return data

    @property
    def symptom_patterns(self) -> list[re.Pattern]:
        return [re.compile(s["regex"] if isinstance(s, dict) else re.escape(s), re.IGNORECASE) for s in self.symptoms]


@lru_cache(maxsize=1)
def check_schema() -> dict:
    return json.loads(resources.files("keystone_checks").joinpath("schema/check.schema.json").read_text())


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(check_schema())


# -- YAML with line numbers ----------------------------------------------------------------------


class _Lines(dict):
    """Maps a path tuple inside the document to its 1-based line number."""


def _to_python(node: yaml.Node, path: tuple, lines: _Lines, where: str, problems: list[CheckFileError]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _to_python(key_node, path, _Lines(), where, problems)
            if key in result:
                problems.append(CheckFileError(f"{where}:{key_node.start_mark.line + 1}", f"duplicate key '{key}'"))
            result[key] = _to_python(value_node, path + (key,), lines, where, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, path + (i,), lines, where, problems) for i, v in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)  # the composer makes only these three kinds
    return _scalar(node)


_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def _scalar(node: yaml.ScalarNode) -> Any:
    try:
        return _CONSTRUCTOR.construct_object(node, deep=True)
    finally:
        _CONSTRUCTOR.constructed_objects.clear()


def _line_for(lines: _Lines, path: tuple) -> int | None:
    while path not in lines and path:
        path = path[:-1]
    return lines.get(path)


def _loc(where: str, lines: _Lines, path: tuple) -> str:
    line = _line_for(lines, tuple(path))
    return f"{where}:{line}" if line else where


# -- one file ------------------------------------------------------------------------------------


def load_file(path: Path, root: Path | None = None) -> tuple[Check | None, list[CheckFileError], _Lines]:
    where = str(path if root is None else _relative(path, root))
    problems: list[CheckFileError] = []
    lines = _Lines()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [CheckFileError(where, f"cannot read: {exc}")], lines
    try:
        node = yamlsafe.compose(text, what="check files")  # no aliases, bounded nesting
    except yaml.YAMLError as exc:
        loc, _, reason = yamlsafe.describe(exc, where).partition(": ")
        return None, [CheckFileError(loc, reason)], lines
    if node is None:
        return None, [CheckFileError(where, "empty file: a check file holds one YAML mapping")], lines
    data = _to_python(node, (), lines, where, problems)
    if not isinstance(data, dict):
        return None, [CheckFileError(f"{where}:1", "a check file must be a YAML mapping (id:, title:, ...)")], lines

    for error in sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        at = tuple(error.absolute_path)
        if error.validator == "additionalProperties" and _in_condition(at):
            continue  # an unknown keyword in expect: reported below against the fact's shape, with a hint
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            at = at + (extra[0],) if extra else at  # point at the offending key's line
        problems.append(CheckFileError(_loc(where, lines, at), _schema_message(error)))
    if problems:
        return None, problems, lines

    problems.extend(_semantic_problems(data, where, lines))
    check = Check(**{k: v for k, v in data.items()}, path=where)
    return (None if problems else check), problems, lines


def _in_condition(at: tuple) -> bool:
    """Whether a path is inside ``expect`` or ``applies_when.schema`` (JSON Schema conditions)."""
    return at[:1] == ("expect",) or at[:2] == ("applies_when", "schema")


def _schema_message(error) -> str:
    field_path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"{field_path}: {error.message}" + (f" (allowed keys: {allowed})" if allowed else "")
    if error.validator == "oneOf" and field_path.startswith("fix"):
        return f"{field_path}: a fix has either 'steps' with a 'risk', or 'manual' text (not both)"
    return f"{field_path}: {error.message}"


def _semantic_problems(data: dict, where: str, lines: _Lines) -> list[CheckFileError]:
    from ..facts import FACTS
    from ..operations import resolve_operation

    problems: list[CheckFileError] = []

    def add(path: tuple, message: str) -> None:
        problems.append(CheckFileError(_loc(where, lines, path), message))

    for i, symptom in enumerate(data.get("symptoms", [])):
        if isinstance(symptom, dict):
            try:
                re.compile(symptom["regex"])
            except re.error as exc:
                add(("symptoms", i, "regex"), f"symptoms[{i}]: broken regex {symptom['regex']!r}: {exc}")

    for name, spec in data.get("gather", {}).items():
        fact = FACTS.get(spec["fact"])
        if fact is None:
            add(("gather", name, "fact"), f"gather.{name}: unknown fact '{spec['fact']}' (known: {', '.join(sorted(FACTS))})")
            continue
        _check_call(fact().command, spec.get("args", {}), ("gather", name, "args"), f"gather.{name}: fact {spec['fact']}", add)

    for i, step in enumerate((data.get("fix") or {}).get("steps", [])):
        try:
            op = resolve_operation(step["op"])
        except LookupError as exc:
            add(("fix", "steps", i, "op"), f"fix.steps[{i}]: {exc}")
            continue
        _check_call(getattr(op, "_inner", op), step.get("args", {}), ("fix", "steps", i, "args"),
                    f"fix.steps[{i}]: operation {step['op']}", add)

    guide = data.get("guide", {})
    known_sections = _guide_headings(guide.get("document", ""))
    if known_sections is not None and guide.get("section") not in known_sections:
        close = difflib.get_close_matches(guide["section"], sorted(known_sections), n=1, cutoff=0.6)
        add(("guide", "section"), f"guide.section {guide['section']!r} is not a heading of {guide['document']}"
                                  + (f" (did you mean {close[0]!r}?)" if close else " (copy the heading text without the #'s)"))

    playbook = (data.get("fix") or {}).get("playbook")
    if playbook and not _playbook_exists(playbook):
        add(("fix", "playbook"), f"fix.playbook: {playbook!r} does not exist (a fix playbook is named from the "
                                 f"repository root, e.g. playbooks/fix/load-keys.py; existing: "
                                 f"{', '.join(_fix_playbooks()) or 'none'})")

    for i, item in enumerate(data.get("requires_data") or []):
        for key in [item] if isinstance(item, str) else item if isinstance(item, list) else []:
            if key not in _SAMPLE_CONTEXT:
                add(("requires_data", i),
                    f"requires_data: unknown host data key '{key}' (known keys: see keystone_checks/engine/hostdata.py)")

    problems.extend(_applies_when_problems(data, where, lines))

    # Templates first: a check whose templates are not plain placeholders is not rendered at all.
    bad_templates = False
    for section in ("gather", "expect", "fix", "applies_when"):
        for path, template in templating.walk_templates(data.get(section), (section,)):
            where_in = ".".join(map(str, path))
            try:
                unknown = templating.variables(template) - set(_SAMPLE_CONTEXT)
            except templating.TemplateProblem as exc:
                bad_templates = True
                add(path, f"check '{data.get('id')}': {where_in}: {exc}")
                continue
            if unknown:
                bad_templates = True
                add(path, f"check '{data.get('id')}': {where_in}: template {template!r} uses unknown host data "
                          f"{sorted(unknown)} (known keys: see keystone_checks/engine/hostdata.py)")
    if bad_templates:
        return problems

    try:
        rendered = templating.render(data["expect"], _SAMPLE_CONTEXT)
        Draft202012Validator.check_schema(rendered)
    except templating.TemplateProblem as exc:
        add(("expect",), f"expect: {exc}")
    except SchemaError as exc:
        path = ("expect",) + tuple(exc.path)
        add(path, f"{'.'.join(map(str, path))}: expect is not a valid JSON Schema: {exc.message}")
    else:
        # JSON Schema ignores what it does not know: compare expect with what the facts return
        facts = {name: spec["fact"] for name, spec in data.get("gather", {}).items()}
        for path, message in shapes.expect_problems(rendered, shapes.gathered_shape(facts), ("expect",), shapes.GATHERED):
            add(path, message)
        rule = data.get("applies_when")
        if rule and rule["gather"] in facts:
            try:
                schema = templating.render(rule["schema"], _SAMPLE_CONTEXT)
            except templating.TemplateProblem:
                schema = None  # reported with the other template problems
            fact = facts[rule["gather"]]
            for path, message in shapes.expect_problems(schema, shapes.SHAPES.get(fact), ("applies_when", "schema"),
                                                        f"{rule['gather']} ({fact})"):
                add(path, message)
    return problems


@cache
def _guide_headings(document: str) -> frozenset[str] | None:
    """The headings of a guide (read the way ``coverage`` reads them); None when it cannot be read."""
    from ..tools import coverage

    try:
        return frozenset(coverage.headings(coverage.guide_text(document)))
    except (OSError, ValueError):
        return None  # the schema already limits document to the shipped guides


def _playbook_exists(name: str) -> bool:
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or relative.parts[:2] != ("playbooks", "fix"):
        return False
    return (playbooks_dir().parent / relative).is_file()


def _fix_playbooks() -> list[str]:
    directory = playbooks_dir() / "fix"
    return sorted(f"playbooks/fix/{p.name}" for p in directory.glob("*.py")) if directory.is_dir() else []


def _applies_when_problems(data: dict, where: str, lines: _Lines) -> list[CheckFileError]:
    """``applies_when`` must name one of the check's own gather entries and hold a valid JSON Schema."""
    rule = data.get("applies_when")
    if not rule:
        return []
    problems: list[CheckFileError] = []
    gathers = sorted(data.get("gather", {}))
    if rule["gather"] not in gathers:
        problems.append(CheckFileError(_loc(where, lines, ("applies_when", "gather")),
                                       f"applies_when.gather: {rule['gather']!r} is not a name under this check's gather "
                                       f"(names: {', '.join(gathers) or 'none'}); gather the value it judges, e.g. "
                                       "layout: {fact: system.Layout, ...}"))
    try:
        Draft202012Validator.check_schema(templating.render(rule["schema"], _SAMPLE_CONTEXT))
    except templating.TemplateProblem:
        pass  # reported with the other template problems
    except SchemaError as exc:
        path = ("applies_when", "schema") + tuple(exc.path)
        problems.append(CheckFileError(_loc(where, lines, path),
                                       f"{'.'.join(map(str, path))}: not a valid JSON Schema: {exc.message}"))
    return problems


def _check_call(func, args: dict, path: tuple, what: str, add) -> None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return
    params = [p for p in signature.parameters.values() if p.name != "self"]
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in params)
    names = {p.name for p in params}
    for key in args:
        if not accepts_any and key not in names:
            add(path + (key,), f"{what} takes no argument '{key}' (takes: {', '.join(sorted(names)) or 'none'})")
    for p in params:
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in args:
            add(path, f"{what} needs argument '{p.name}'")


# -- the catalog ---------------------------------------------------------------------------------


def check_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        else:
            files.append(path)
    return files


def validate(paths: list[Path], against: list[Path] | None = None) -> tuple[list[Check], list[CheckFileError]]:
    """Load every check file under ``paths``; return the good checks and every problem found.

    ``against``: the catalog the files join (e.g. the checks/ directory for a new file). Its checks
    take part in the id, ``depends_on`` and cycle checks, first, so a duplicate id is blamed on the
    new file; problems of the catalog's own files are not reported (validate the catalog for those).
    """
    root = Path.cwd()
    checks: list[Check] = []
    problems: list[CheckFileError] = []
    files = check_files(paths)
    for path in paths:
        if not path.exists():
            hint = ""
            if path == DEFAULT_CHECKS_DIR:
                hint = (" (the catalog: set KEYSTONE_CHECKS_DIR to a checks/ directory, or reinstall"
                        " keystone-checks from a wheel or a source checkout, which both carry it)")
            problems.append(CheckFileError(str(path), "no such file or directory" + hint))
    if paths and not files and not problems:
        problems.append(CheckFileError(", ".join(map(str, paths)), "no check files (*.yaml) found"))
    lines_by_path: dict[str, _Lines] = {}
    for path in files:
        check, file_problems, lines = load_file(path, root)
        problems.extend(file_problems)
        if check:
            checks.append(check)
            lines_by_path[check.path] = lines
    if against is None:
        problems.extend(_catalog_problems(checks, lines_by_path))
        return checks, problems
    mine = {f.resolve() for f in files}
    known: list[Check] = []
    for path in check_files([p for p in against if p.exists()]):
        if path.resolve() not in mine:
            check, _, lines = load_file(path, root)
            if check:
                known.append(check)
                lines_by_path.setdefault(check.path, lines)
    new_paths = {c.path for c in checks}
    problems.extend(p for p in _catalog_problems(known + checks, lines_by_path, new_paths)
                    if p.location.partition(":")[0] in new_paths)
    return checks, problems


def _catalog_problems(checks: list[Check], lines_by_path: dict[str, _Lines],
                      blame: set[str] | frozenset[str] = frozenset()) -> list[CheckFileError]:
    """Problems between checks (duplicate ids, unknown or cyclic depends_on); a cycle is reported on a
    file in ``blame`` (the new files) when it runs through one."""
    problems: list[CheckFileError] = []
    by_id: dict[str, Check] = {}
    for check in checks:
        if check.id in by_id:
            first = by_id[check.id]
            problems.append(CheckFileError(_loc(check.path, lines_by_path[check.path], ("id",)),
                                           f"duplicate id '{check.id}' (first defined in {first.path})"))
        else:
            by_id[check.id] = check
    for check in checks:
        for i, dep in enumerate(check.depends_on):
            if dep not in by_id:
                problems.append(CheckFileError(_loc(check.path, lines_by_path[check.path], ("depends_on", i)),
                                               f"depends_on: unknown check id '{dep}'"))
    for cycle in _cycles(by_id):
        first = next((by_id[c] for c in cycle if by_id[c].path in blame), by_id[cycle[0]])
        problems.append(CheckFileError(_loc(first.path, lines_by_path[first.path], ("depends_on",)),
                                       "depends_on cycle: " + " -> ".join(cycle + [cycle[0]])))
    return problems


def _cycles(by_id: dict[str, Check]) -> list[list[str]]:
    found: list[list[str]] = []
    seen: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            cycle = stack[stack.index(node):]
            if not set(cycle) & seen:
                found.append(cycle)
                seen.update(cycle)
            return
        if node in seen or node not in by_id:
            return
        for dep in by_id[node].depends_on:
            visit(dep, stack + [node])

    for check_id in sorted(by_id):
        visit(check_id, [])
    return found


def load_catalog(paths: list[Path] | None = None) -> list[Check]:
    """The validated catalog; raises CatalogError listing every problem if any file is broken.

    Full validation costs ~1 s for the whole catalog (YAML, schemas, fact imports), paid by every
    pyinfra run; so a validated catalog is cached under the user cache dir, keyed by a hash of every
    check file's path and bytes and of the package's own code. Any change re-validates.
    """
    paths = paths or [DEFAULT_CHECKS_DIR]
    key = _catalog_key(paths)
    cached = _read_cache(key) if key else None
    if cached is not None:
        return cached
    checks, problems = validate(paths)
    if problems:
        raise CatalogError(problems)
    if key:
        _write_cache(key, checks)
    return checks


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "keystone-checks" / "catalog"


def _catalog_key(paths: list[Path]) -> str | None:
    import hashlib

    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent.parent  # the whole package: engine, facts, operations, schema
    try:
        # the guides too: validation checks each guide.section against their headings
        for source in sorted(package.rglob("*.py")) + sorted(package.glob("schema/*.json")) + sorted(package.glob("data/guides/*.md")):
            digest.update(str(source.relative_to(package)).encode() + b"\0" + source.read_bytes())
        files = check_files(paths)
        if not files or not all(p.exists() for p in paths):
            return None
        for path in files:
            digest.update(str(path.resolve()).encode() + b"\0" + path.read_bytes())
    except OSError:
        return None
    return digest.hexdigest()[:32]


def _read_cache(key: str) -> list[Check] | None:
    try:
        data = json.loads((_cache_dir() / f"{key}.json").read_text())
        return [Check(**item) for item in data]
    except (OSError, ValueError, TypeError):
        return None


def _write_cache(key: str, checks: list[Check]) -> None:
    try:
        directory = _cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps([c.to_data() for c in checks]))
        os.replace(tmp, directory / f"{key}.json")
    except OSError:
        pass  # a read-only home only costs speed


def _relative(path: Path, root: Path) -> Path:
    try:
        return path.resolve().relative_to(root.resolve())
    except ValueError:
        return path
