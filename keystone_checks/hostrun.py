"""One host's look: ONE remote command gathering every probe -> each fact parses its section ->
checks evaluated in dependency order. Used by the run itself and, after a fix, by the re-checks."""

from __future__ import annotations

import time
from typing import Any

from .catalog import Check
from .errors import KeystoneChecksError
from .evaluate import CheckResult, Outcome, evaluate, result_for
from .facts import FACTS
from .facts.base import ProbeOutput
from .facts.batch import Probe, ProbeBatch, new_marker, split_batch
from .plan import HostPlan, plan_host

# A dependency that passed, or was repaired in this run, lets its dependents be evaluated.
SATISFIED = (Outcome.PASS, Outcome.FIXED)


def gather(host, probes: list[Probe]) -> list[ProbeOutput]:
    """Run every probe on ``host`` in one remote command; one ProbeOutput per probe."""
    if not probes:
        return []
    marker = new_marker()
    lines = host.get_fact(ProbeBatch, probes=tuple(probes), marker=marker)
    return split_batch(lines or [], marker, len(probes))


def parse_outputs(checks: list[Check], plan: HostPlan, outputs: list[ProbeOutput]) -> dict[int, tuple[Any, str | None]]:
    """Probe index -> (value, error message). Each probe is parsed once, by the fact that made it."""
    fact_of: dict[int, str] = {}
    for check in checks:
        for gather_name, index in plan.probe_index.get(check.id, {}).items():
            fact_of[index] = check.gather[gather_name]["fact"]
    parsed: dict[int, tuple[Any, str | None]] = {}
    for index, fact_name in fact_of.items():
        fact = FACTS[fact_name]()
        try:
            parsed[index] = (fact.parse(outputs[index]), None)
        except KeystoneChecksError as exc:
            parsed[index] = (None, f"{fact_name}: {exc}")
        except Exception as exc:  # a parser bug must not take the run down; it is still an error
            parsed[index] = (None, f"{fact_name}: parser failed: {type(exc).__name__}: {exc}")
    return parsed


def evaluate_host(checks: list[Check], plan: HostPlan, parsed, context,
                  results: dict[str, CheckResult] | None = None) -> dict[str, CheckResult]:
    """Evaluate ``checks`` (dependencies first). ``results`` holds outcomes already known for this
    host (a re-check after a fix evaluates dependents against them)."""
    known = dict(results or {})
    fresh: dict[str, CheckResult] = {}
    for check in checks:
        started = time.perf_counter()
        fresh[check.id] = known[check.id] = evaluate_one(check, plan, parsed, context, known)
        fresh[check.id].duration_ms = round((time.perf_counter() - started) * 1000, 3)
    return fresh


def look(host, checks: list[Check], roles: list[str], context, known: dict[str, CheckResult] | None = None
         ) -> dict[str, CheckResult]:
    """Plan ``checks`` for this host, gather their probes in one command, evaluate them: the whole
    look, for the run itself and for every re-check after a fix."""
    plan = plan_host(checks, roles, context)
    parsed = parse_outputs(plan.checks, plan, gather(host, plan.probes))
    return evaluate_host(checks, plan, parsed, context, known)


def blocking_dependencies(check: Check, results: dict[str, CheckResult]) -> list[str]:
    """Dependencies that stop ``check`` from being evaluated. One that does not apply to this host
    (another role, or host data it needs is empty) gates nothing; one that applies must have passed."""
    return [d for d in check.depends_on
            if d in results and results[d].outcome not in SATISFIED and not results[d].gates_nothing]


def evaluate_one(check: Check, plan: HostPlan, parsed, context, results) -> CheckResult:
    if check in plan.skipped_by_role:
        return result_for(check, Outcome.SKIPPED, f"applies to {', '.join(check.roles)} hosts only", role_skipped=True)
    if check.id in plan.not_applicable:
        return result_for(check, Outcome.SKIPPED, plan.not_applicable[check.id], not_applicable=True)
    blocking = blocking_dependencies(check, results)
    if blocking:
        reasons = ", ".join(f"{d} ({results[d].outcome})" for d in blocking)
        return result_for(check, Outcome.SKIPPED, f"skipped because {reasons} did not pass", blocked_by=blocking)
    if check.id in plan.problems:
        return result_for(check, Outcome.ERROR, plan.problems[check.id])
    data: dict[str, Any] = {}
    errors: list[str] = []
    for gather_name, index in plan.probe_index.get(check.id, {}).items():
        value, error = parsed.get(index, (None, "probe was not run"))
        if error:
            errors.append(f"could not gather {gather_name} ({error})")
        data[gather_name] = value
    if errors:
        return result_for(check, Outcome.ERROR, "; ".join(errors))
    try:
        return evaluate(check, data, context)
    except Exception as exc:  # containment: an evaluator bug is this check's error, not the run's
        return result_for(check, Outcome.ERROR, f"cannot evaluate: {type(exc).__name__}: {exc}")
