"""Evaluation: gathered data + a check's ``expect`` JSON Schema -> one outcome with operator words.

The jsonschema library is the condition language; this module only turns its errors into
"expected ... / found ..." lines, using each failing condition's ``description``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from . import templating
from .catalog import Check
from .remedy import describe_fix


class Outcome(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"  # could not be evaluated: never counted as pass
    SKIPPED = "skipped"
    FIXED = "fixed"
    FIX_FAILED = "fix-failed"
    WOULD_FIX = "would-fix"
    # failed, but a waiver the operator wrote (reason, expiry) covers it: shown, never a pass, and
    # not counted toward the exit status (keystone_checks/engine/waivers.py)
    WAIVED = "waived"

    def __str__(self) -> str:
        return self.value


# The outcome vocabulary every writer and front-end reads (strings, as in the report dict; an
# Outcome member compares equal to its string). One place, so "failing" and "worst first" cannot
# drift between formats. "waived" (a finding an operator accepted until a date) has its place in the
# order; an outcome not listed (a newer report's) ranks with it, after the problems, and is not
# failing: it is shown, never counted as a finding nor as a pass.
FAILING = frozenset({"fail", "fix-failed", "would-fix"})  # the check's problem is there (dry run: still there)
OUTCOME_ORDER = ("fix-failed", "fail", "error", "would-fix", "waived", "fixed", "pass", "skipped")  # worst first
SEVERITY_ORDER = ("critical", "warning", "info")  # worst first


def is_failing(outcome: Any) -> bool:
    return str(outcome) in FAILING


def outcome_rank(outcome: Any) -> int:
    """Sort key, worst first; an outcome not in OUTCOME_ORDER ranks with "waived", never first."""
    text = str(outcome)
    return OUTCOME_ORDER.index(text) if text in OUTCOME_ORDER else OUTCOME_ORDER.index("waived")


def severity_rank(severity: Any) -> int:
    text = str(severity)
    return SEVERITY_ORDER.index(text) if text in SEVERITY_ORDER else len(SEVERITY_ORDER)


def worst_first(outcome: Any, severity: Any) -> tuple[int, int]:
    """Sort key of a finding for "what needs attention first": a critical check before a warning
    one, then by outcome (a fix that failed before a plain failure, before one not evaluated)."""
    return severity_rank(severity), outcome_rank(outcome)


@dataclass
class CheckResult:
    check: str
    title: str
    severity: str
    outcome: Outcome
    message: str
    expected: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    guide: dict[str, str] = field(default_factory=dict)
    fix: dict[str, Any] | None = None
    duration_ms: float = 0.0
    role_skipped: bool = False  # skipped because the check is not for this host's role (not reported)
    not_applicable: bool = False  # skipped because host data it requires is empty (reported, gates nothing)
    blocked_by: list[str] = field(default_factory=list)  # skipped because these dependencies did not pass
    # ran only as a gate: a selected check (--checks/--tags/--severity) depends on it (selection.py)
    gate_for: list[str] = field(default_factory=list)
    # the waiver matching this check on this host: {reason, expires, hosts, source, expired}
    waiver: dict[str, Any] | None = None
    # The catalog's fix (remedy.describe_fix), reported with every failing outcome, fix requested or not.
    remedy: dict[str, Any] | None = None

    @property
    def gates_nothing(self) -> bool:
        """A check that does not apply to this host blocks none of its dependents."""
        return self.role_skipped or self.not_applicable

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("role_skipped")
        data.pop("not_applicable")
        for optional in ("gate_for", "waiver"):  # only where they apply: reports stay as they were otherwise
            if not data[optional]:
                data.pop(optional)
        if not is_failing(self.outcome) or not self.remedy:
            data.pop("remedy")  # only what fails needs a way out; keeps a 10,000-result report small
        data["outcome"] = str(self.outcome)
        duration = self.duration_ms if isinstance(self.duration_ms, (int, float)) else 0.0
        data["duration_ms"] = duration if math.isfinite(duration) and duration >= 0 else 0.0  # JSON has no NaN
        return data


def result_for(check: Check, outcome: Outcome, message: str, **extra: Any) -> CheckResult:
    return CheckResult(check=check.id, title=check.title, severity=check.severity, outcome=outcome,
                       message=message, guide=dict(check.guide), remedy=describe_fix(check), **extra)


def evaluate(check: Check, data: dict[str, Any], context: dict[str, Any]) -> CheckResult:
    """Validate gathered ``data`` against the check's rendered ``expect`` schema."""
    try:
        schema = templating.render(check.expect, context)
        validator = Draft202012Validator(schema)
        errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    except templating.TemplateProblem as exc:
        return result_for(check, Outcome.ERROR, f"cannot evaluate: {exc}", evidence=data)
    except (SchemaError, TypeError, ValueError) as exc:  # e.g. a templated minimum that is not a number
        return result_for(check, Outcome.ERROR, f"cannot evaluate: expect schema invalid for this host: {exc}", evidence=data)
    if not errors:
        return result_for(check, Outcome.PASS, "ok", evidence=data)
    leaves = _leaf_errors(errors)
    expected, found = [], []
    for error in leaves:
        expected.append(_expected_text(error))
        found.append(_found_text(error))
    message = "; ".join(f"expected {e}, found {f}" for e, f in zip(expected, found))
    target = looked_at(check, context)
    if target:
        message += f" (looked at: {target})"
    return result_for(check, Outcome.FAIL, message, expected=expected, found=found, evidence=data)


def looked_at(check: Check, context: dict[str, Any]) -> str:
    """What a failing check looked at, from its gather arguments as rendered for this host ("target:
    disks.TargetDisk path=/dev/sdz"): the pool, disk or path an operator must know to act on the
    failure. Facts without scalar arguments add nothing; host data never holds a secret (secrets.py)."""
    parts = []
    for name, spec in check.gather.items():
        if not spec.args:
            continue
        try:
            args = templating.render(spec.args, context)
        except templating.TemplateProblem:
            continue
        # scalars only (a pool, a disk, a path, a port): a list of targets is in the evidence already
        shown = " ".join(f"{key}={value if isinstance(value, str) else json.dumps(value)}"
                         for key, value in args.items()
                         if isinstance(value, (str, int, float, bool)) and value != "")
        if shown:
            parts.append(f"{name}: {spec.fact} {shown}")
    return "; ".join(parts)


def _leaf_errors(errors):
    """The most specific errors (combinators like anyOf report their sub-errors' context)."""
    leaves = []
    for error in errors:
        if error.context and error.validator in ("anyOf", "oneOf") and not error.schema.get("description"):
            best = min(error.context, key=lambda e: len(e.context or []))
            leaves.append(best)
        else:
            leaves.append(error)
    return leaves


def _expected_text(error) -> str:
    described = error.schema.get("description") if isinstance(error.schema, dict) else None
    if described:
        return described
    where = _path(error)
    value = error.validator_value
    phrases = {
        "const": lambda: f"{where} = {_short(value)}",
        "enum": lambda: f"{where} one of {_short(value)}",
        "minimum": lambda: f"{where} >= {value}",
        "maximum": lambda: f"{where} <= {value}",
        "exclusiveMinimum": lambda: f"{where} > {value}",
        "exclusiveMaximum": lambda: f"{where} < {value}",
        "maxItems": lambda: f"{where} to have at most {value} item(s)",
        "minItems": lambda: f"{where} to have at least {value} item(s)",
        "required": lambda: f"{where} to have {', '.join(map(str, value))}",
        "type": lambda: f"{where} of type {value}",
        "pattern": lambda: f"{where} matching /{value}/",
        "contains": lambda: f"{where} to contain a matching item",
        "not": lambda: f"{where} not to match {_short(value)}",
    }
    phrase = phrases.get(error.validator)
    return phrase() if phrase else f"{where}: {error.message}"


def _found_text(error) -> str:
    if error.validator == "required":
        return f"{_path(error)} without {error.message.split(' is a required')[0]}"
    return f"{_path(error)} = {_short(error.instance)}"


def _path(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "the data"


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."
