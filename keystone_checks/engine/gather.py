"""One host's look: ONE remote command gathering every probe -> each fact parses its section ->
checks evaluated in dependency order. Used by the run itself and, after a fix, by the re-checks."""

from __future__ import annotations

import time
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from ..errors import HostDataError, KeystoneChecksError
from ..facts import FACTS
from ..facts.base import EXIT_NOT_RUN, ProbeOutput
from ..facts.batch import KILL_GRACE, STDOUT_LIMIT, Probe, ProbeBatch, new_marker, split_batch
from . import templating
from .catalog import Check
from .evaluate import CheckResult, Outcome, _short, evaluate, result_for
from .plan import HostPlan, plan_host

# A dependency that passed, or was repaired in this run, lets its dependents be evaluated.
SATISFIED = (Outcome.PASS, Outcome.FIXED)

# Without host data `host_timeout`, a host gets its slowest probe's timeout plus this margin (the
# batch's own kill grace, the transfer, a loaded host) to answer.
HOST_TIMEOUT_MARGIN = 30


class HostTimeout(KeystoneChecksError):
    """The host did not answer within its deadline; ``doing`` says what was pending."""

    def __init__(self, seconds: float, doing: str):
        self.seconds, self.doing = seconds, doing
        super().__init__(f"no answer within {seconds:g}s while {doing}; the other hosts were not held up "
                         "(host data host_timeout raises the limit for a host that is just slow)")


def host_deadline(probes: list[Probe], context: dict[str, Any] | None) -> float:
    """Seconds the host gets to answer one gather: host data ``host_timeout``, else the slowest
    probe's timeout + the batch's kill grace + :data:`HOST_TIMEOUT_MARGIN`."""
    explicit = (context or {}).get("host_timeout")
    if explicit is not None:
        if explicit <= 0:
            raise HostDataError(str((context or {}).get("host", "?")), "host_timeout", f"must be more than 0 seconds, got {explicit!r}")
        return float(explicit)
    return max((p.timeout for p in probes), default=0) + KILL_GRACE + HOST_TIMEOUT_MARGIN


def gather(host, probes: list[Probe], deadline: float | None = None, doing: str = "gathering facts",
           context: dict[str, Any] | None = None) -> list[ProbeOutput]:
    """Run every probe on ``host`` in one remote command; one ProbeOutput per probe.

    ``deadline`` (seconds) bounds the whole exchange - channel open, the command, every byte of
    its output - so a host whose session never returns costs its own result, not the run's:
    raises :class:`HostTimeout`. pyinfra runs each host in a gevent greenlet, so a
    ``gevent.Timeout`` interrupts exactly this host's wait.

    A probe marked ``secret`` needs the operator's passphrase: it is resolved here, on the
    controller, from the references in ``context`` (keystone_checks.secrets) and sent as the one
    command's stdin (pyinfra's ``_stdin``). When it cannot be resolved, those probes are not run
    and say why (naming the reference, never a value); the others run as usual.
    """
    if not probes:
        return []
    import gevent

    secret, unresolved = None, ""
    if any(p.secret for p in probes):
        from ..secrets import SecretError, resolve_passphrase

        try:
            secret = resolve_passphrase((context or {}).get("luks_passphrase_file") or "",
                                        (context or {}).get("luks_passphrase_env") or "")
        except SecretError as exc:
            unresolved = f"not run: {exc}"
    run = [p for p in probes if secret is not None or not p.secret]
    marker = new_marker()
    timer = gevent.Timeout(deadline) if deadline else None
    if timer is not None:
        timer.start()
    try:
        lines = host.get_fact(ProbeBatch, probes=tuple(run), marker=marker,
                              **({"_stdin": [secret]} if secret is not None else {})) if run else []
    except gevent.Timeout as exc:
        if exc is not timer:
            raise
        _abandon(host)
        raise HostTimeout(deadline or 0, doing) from None
    finally:
        if timer is not None:
            timer.close()
    outputs = iter(split_batch(lines or [], marker, len(run)))
    return [ProbeOutput(EXIT_NOT_RUN, [], [unresolved]) if p.secret and secret is None else next(outputs) for p in probes]


def _abandon(host) -> None:
    """Close a host's SSH connection after its deadline: the reader greenlets pyinfra left waiting on
    the channel end instead of holding it (and the host) forever."""
    client = getattr(getattr(host, "connector", None), "client", None)
    try:
        if client is not None:
            client.close()
    except Exception:  # noqa: BLE001 - best effort: the host is already reported
        pass


def parse_outputs(checks: list[Check], plan: HostPlan, outputs: list[ProbeOutput]) -> dict[int, tuple[Any, str | None]]:
    """Probe index -> (value, error message). Each probe is parsed once, by the fact that made it."""
    fact_of: dict[int, str] = {}
    for check in checks:
        for gather_name, index in plan.probe_index.get(check.id, {}).items():
            fact_of[index] = check.gather[gather_name].fact
    parsed: dict[int, tuple[Any, str | None]] = {}
    for index, fact_name in fact_of.items():
        fact = FACTS[fact_name]()
        if outputs[index].truncated:  # a cut output could parse into a wrong pass: never parsed
            parsed[index] = (None, f"{fact_name}: output larger than {STDOUT_LIMIT} bytes (not parsed)")
            continue
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


def look(host, checks: list[Check], roles: list[str], context, known: dict[str, CheckResult] | None = None,
         doing: str = "gathering facts") -> dict[str, CheckResult]:
    """Plan ``checks`` for this host, gather their probes in one command, evaluate them: the whole
    look, for the run itself and for every re-check after a fix. Raises :class:`HostTimeout` when
    the host does not answer within :func:`host_deadline`."""
    plan = plan_host(checks, roles, context)
    outputs = gather(host, plan.probes, host_deadline(plan.probes, context), doing, context)
    parsed = parse_outputs(plan.checks, plan, outputs)
    return evaluate_host(checks, plan, parsed, context, known)


def blocking_dependencies(check: Check, results: dict[str, CheckResult]) -> list[str]:
    """Dependencies that stop ``check`` from being evaluated. One that does not apply to this host
    (another role, or host data it needs is empty) gates nothing; one that applies must have passed."""
    return [d for d in check.depends_on
            if d in results and results[d].outcome not in SATISFIED and not results[d].gates_nothing]


def applies(check: Check, plan: HostPlan, parsed, context) -> CheckResult | None:
    """Judge ``check.applies_when`` on its gathered value: None when the check applies, else the
    result: ``skipped`` (not applicable: gates nothing) or ``error`` (cannot tell whether it applies)."""
    rule = check.applies_when
    if not rule:
        return None
    name = rule["gather"]
    index = plan.probe_index.get(check.id, {}).get(name)
    value, error = parsed.get(index, (None, "probe was not run")) if index is not None else (None, "not gathered")
    if error:
        return result_for(check, Outcome.ERROR, f"cannot tell whether it applies ({rule['description']}): "
                                                f"could not gather {name} ({error})")
    try:
        schema = templating.render(rule["schema"], context)
        matches = Draft202012Validator(schema).is_valid(value)
    except (templating.TemplateProblem, SchemaError, TypeError, ValueError) as exc:
        return result_for(check, Outcome.ERROR, f"cannot tell whether it applies: applies_when: {exc}")
    if matches:
        return None
    keys = list(schema.get("properties", {})) if isinstance(schema, dict) else []
    shown = {k: value.get(k) for k in keys} if isinstance(value, dict) and keys else value
    return result_for(check, Outcome.SKIPPED, f"not applicable: applies when {rule['description']}; "
                                              f"found {name} = {_short(shown)}",
                      evidence={name: value}, not_applicable=True)


def evaluate_one(check: Check, plan: HostPlan, parsed, context, results) -> CheckResult:
    if check in plan.skipped_by_role:
        return result_for(check, Outcome.SKIPPED, f"applies to {', '.join(check.roles)} hosts only", role_skipped=True)
    if check.id in plan.not_applicable:
        return result_for(check, Outcome.SKIPPED, plan.not_applicable[check.id], not_applicable=True)
    if check.applies_when and check.id not in plan.problems:
        verdict = applies(check, plan, parsed, context)
        if verdict is not None:
            return verdict
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
