"""The deploy-side engine: what ``playbooks/<phase>.py`` calls for each host.

Per host: resolve host data -> plan the phase's checks for the host's roles -> ONE remote command
gathering every fact (facts/batch.py) -> each fact parses its own section -> evaluate checks in
dependency order -> (with ``--data fix=true``) queue fixes of failing checks, then re-check them
at execute time -> record. Nothing raised for one check or host reaches pyinfra: an uncaught
exception in deploy code aborts every host (see shared notes on pyinfra 3.10).

The report is written when the pyinfra process exits (pyinfra has no "run finished" hook).
"""

from __future__ import annotations

import atexit
import sys
import time
from typing import Any

from pyinfra import logger
from pyinfra.api.state import StateStage
from pyinfra.operations import python as python_ops

from . import connect_errors, hostdata, nodelay, report, templating
from .catalog import Check, load_catalog
from .errors import CatalogError, KeystoneChecksError
from .evaluate import CheckResult, Outcome, evaluate, result_for
from .facts import FACTS
from .facts.base import ProbeOutput
from .facts.batch import ProbeBatch, Probe, new_marker, split_batch
from .operations import resolve_operation
from .plan import checks_for_phase, order_by_dependencies, plan_host

_catalog_cache: dict[str, list[Check] | CatalogError] = {}


def catalog() -> list[Check]:
    if "checks" not in _catalog_cache:
        try:
            _catalog_cache["checks"] = load_catalog()
        except CatalogError as exc:
            _catalog_cache["checks"] = exc
    cached = _catalog_cache["checks"]
    if isinstance(cached, CatalogError):
        raise cached
    return cached


# -- gathering -----------------------------------------------------------------------------------


def gather(host, probes: list[Probe]) -> list[ProbeOutput]:
    """Run every probe on ``host`` in one remote command; one ProbeOutput per probe."""
    if not probes:
        return []
    marker = new_marker()
    lines = host.get_fact(ProbeBatch, probes=tuple(probes), marker=marker)
    return split_batch(lines or [], marker, len(probes))


def parse_outputs(checks: list[Check], plan, outputs: list[ProbeOutput]) -> dict[int, tuple[Any, str | None]]:
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


# -- evaluation ----------------------------------------------------------------------------------


def evaluate_host(checks: list[Check], plan, parsed, context) -> dict[str, CheckResult]:
    results: dict[str, CheckResult] = {}
    for check in checks:
        started = time.perf_counter()
        results[check.id] = _evaluate_one(check, plan, parsed, context, results)
        results[check.id].duration_ms = round((time.perf_counter() - started) * 1000, 3)
    return results


def _evaluate_one(check, plan, parsed, context, results) -> CheckResult:
    if check in plan.skipped_by_role:
        return result_for(check, Outcome.SKIPPED, f"applies to {', '.join(check.roles)} hosts only", role_skipped=True)
    # A dependency that does not apply to this host's role gates nothing (e.g. pool-imported on the
    # operator's machine); one that applies must have passed.
    blocking = [d for d in check.depends_on if d in results and results[d].outcome != Outcome.PASS
                and not results[d].role_skipped]
    if blocking:
        reasons = ", ".join(f"{d} ({results[d].outcome})" for d in blocking)
        return result_for(check, Outcome.SKIPPED, f"skipped because {reasons} did not pass")
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


# -- fixes ---------------------------------------------------------------------------------------


def queue_fixes(host, state, checks: list[Check], results: dict[str, CheckResult], context) -> None:
    by_id = {c.id: c for c in checks}
    for check_id, result in results.items():
        check = by_id[check_id]
        if result.outcome != Outcome.FAIL or not check.fix:
            continue
        if "manual" in check.fix:
            result.fix = {"manual": check.fix["manual"].strip()}
            continue
        risk = check.fix["risk"]
        refusal = _refusal(risk, context, check.fix.get("steps", ()))
        if refusal:
            result.fix = {"risk": risk, "refused": refusal}
            continue
        commands: list[str] = []
        try:
            for step in check.fix["steps"]:
                op = resolve_operation(step["op"])
                args = templating.render(step.get("args", {}), context)
                meta = op(**args, name=f"fix {check.id}: {step['op']}")
                commands.extend(_op_commands(state, host, meta))
        except Exception as exc:
            result.fix = {"risk": risk, "refused": f"could not queue fix: {exc}"}
            continue
        python_ops.call(name=f"re-check {check.id}", function=_recheck, check=check, context=context, result=result)
        result.outcome = Outcome.WOULD_FIX
        result.fix = {"risk": risk, "summary": check.fix.get("summary", ""), "commands": commands}


def _refusal(risk: str, context: dict[str, Any], steps: list[dict[str, Any]] | tuple = ()) -> str | None:
    """Why a fix must not be queued for this host, or None. Destructive fixes need the run's opt-in
    AND the operator naming the inventory's disk; a step that force-imports a pool needs its own
    consent (it can corrupt a pool really in use on another machine)."""
    if _forces_import(steps) and context.get("allow_force_import") is not True:
        return ("force import refused: `zpool import -f` can corrupt a pool in use on another machine; "
                "rerun with --data allow_force_import=true only if you are sure it is not")
    if risk != "destructive":
        return None
    if context.get("allow_destructive") is not True:
        return "destructive fix refused: rerun with --data allow_destructive=true and --data destructive_device=<disk>"
    disk, named = context.get("disk"), context.get("destructive_device")
    if not disk:
        return "destructive fix refused: the inventory declares no disk (host data 'disk')"
    if not named:
        return "destructive fix refused: name the device with --data destructive_device=<disk>"
    if named != disk:
        return f"destructive fix refused: destructive_device {named!r} is not the inventory's disk {disk!r}"
    return None


def _forces_import(steps) -> bool:
    for step in steps or ():
        op = str(step.get("op", ""))
        args = step.get("args") or {}
        if "force_import" in op or (op.endswith("import_pool") and args.get("force") not in (None, False, "false", "")):
            return True
    return False


def _op_commands(state, host, meta) -> list[str]:
    """The exact commands a queued operation will run on this host (for dry runs and reports)."""
    try:
        op_data = state.get_op_data_for_host(host, meta._hash)
        return [str(getattr(c, "get_masked_value", lambda: c)()) for c in op_data.command_generator()]
    except Exception as exc:  # noqa: BLE001 - listing is best effort; the op itself still runs
        return [f"(could not list commands: {exc})"]


def _recheck(check: Check, context: dict[str, Any], result: CheckResult) -> None:
    """Runs at execute time, after the fix's operations: gather again, decide fixed/fix-failed."""
    from pyinfra import host

    try:
        plan = plan_host([check], hostdata.roles_of(host.name, context), context)
        parsed = parse_outputs([check], plan, gather(host, plan.probes))
        again = _evaluate_one(check, plan, parsed, context, {})
    except Exception as exc:  # noqa: BLE001
        result.outcome, result.message = Outcome.FIX_FAILED, f"re-check failed: {exc}"
        return
    if again.outcome == Outcome.PASS:
        result.outcome, result.message = Outcome.FIXED, f"fixed (was: {result.message})"
    else:
        result.outcome = Outcome.FIX_FAILED
        result.message = f"still failing after fix: {again.message}"
    result.evidence = {"before": result.evidence, "after": again.evidence}


# -- recording -----------------------------------------------------------------------------------


class Recorder:
    """Collects host reports for one pyinfra process and writes the report at exit."""

    def __init__(self, state, phase: str):
        self.state = state
        self.phase = phase
        self.started = time.time()
        self.hosts: dict[str, report.HostReport] = {}
        self.report_path: str = ""
        self.extra_reports: str = ""  # --data reports=junit:PATH,prometheus:PATH,...
        self.fix_requested = False
        atexit.register(self.finish)

    def add(self, host_report: report.HostReport) -> None:
        self.hosts[host_report.name] = host_report

    def finish(self) -> None:
        try:
            self._finish()
        except Exception as exc:  # noqa: BLE001 - never traceback at exit
            print(f"keystone-checks: could not write the report: {exc}", file=sys.stderr)

    def _finish(self) -> None:
        executed = self.state.current_stage in (StateStage.Execute, StateStage.Disconnect)
        for host in self.state.inventory:
            if host.name not in self.hosts:
                failure = connect_errors.failure_for(host.name) if host in self.state.failed_hosts else None
                reason = failure.as_text() if failure else \
                    "could not connect (see pyinfra's output above)" if host in self.state.failed_hosts \
                    else "did not run (excluded or stopped before its checks)"
                self.hosts[host.name] = report.HostReport(host.name, status="unreachable", error=reason)
        for host_report in self.hosts.values():
            for r in host_report.results:
                if r.outcome == Outcome.WOULD_FIX and executed:
                    r.outcome = Outcome.FIX_FAILED
                    r.message = f"fix operation did not complete (see pyinfra's output): {r.message}"
        data = report.build(self.phase, list(self.hosts.values()), self.started, time.time(),
                            dry_run=self.fix_requested and not executed, fix_requested=self.fix_requested)
        path = report.write_atomic(self.report_path or report.default_path(self.phase, self.started), report.to_json(data))
        from .reports import console, parse_spec, write_reports

        extra = []
        for spec in filter(None, (part.strip() for part in self.extra_reports.split(","))):
            try:
                extra.append(parse_spec(spec))
            except ValueError as exc:
                print(f"keystone-checks: host data 'reports': {exc}", file=sys.stderr)

        sys.stdout.write("\n" + console.render(data, colour=sys.stdout.isatty()))
        sys.stdout.write(f"report: {path}\n")
        for written in write_reports(data, extra):
            sys.stdout.write(f"report: {written}\n")
        sys.stdout.flush()


_recorders: dict[int, Recorder] = {}


def recorder_for(state, phase: str) -> Recorder:
    key = id(state)
    if key not in _recorders:
        _recorders[key] = Recorder(state, phase)
    return _recorders[key]


# -- entry point ---------------------------------------------------------------------------------


def run_phase(phase: str) -> None:
    """Run ``phase``'s checks on the current pyinfra host. Called once per host by a playbook."""
    _run(phase, lambda checks: checks_for_phase(checks, phase), force_fix=False)


def run_fix(name: str, check_ids: list[str]) -> None:
    """A fix playbook: evaluate ``check_ids`` (and what they depend on) and queue their fixes.

    Fixing is the point of a fix playbook, so ``fix`` is on; ``pyinfra --dry`` shows the commands
    without running them. Destructive steps still need their explicit opt-in.
    """

    def select(checks: list[Check]) -> list[Check]:
        by_id = {c.id: c for c in checks}
        unknown = [i for i in check_ids if i not in by_id]
        if unknown:
            raise KeystoneChecksError(f"fix playbook {name}: unknown check id(s) {unknown}")
        wanted: set[str] = set()
        stack = list(check_ids)
        while stack:
            current = stack.pop()
            if current not in wanted:
                wanted.add(current)
                stack.extend(by_id[current].depends_on)
        return order_by_dependencies([c for c in checks if c.id in wanted])

    _run(f"fix-{name}", select, force_fix=True)


def _run(phase: str, select, force_fix: bool) -> None:
    from pyinfra import host, state

    recorder = recorder_for(state, phase)

    def record_settings(context: dict[str, Any]) -> None:
        if context.get("report"):
            recorder.report_path = context["report"]
        if context.get("reports"):
            recorder.extra_reports = context["reports"]
        recorder.fix_requested |= bool(context.get("fix"))

    recorder.add(check_host(host, state, lambda: select(catalog()), force_fix, record_settings))


def check_host(host, state, checks, force_fix: bool = False, on_context=None) -> report.HostReport:
    """One host, start to end: host data -> plan -> one batched gather -> evaluate -> queue fixes.

    ``checks`` is the list to run or a callable returning it (called after host data resolved, so a
    broken catalog is reported on the host). Every failure becomes the host's or a check's outcome:
    nothing raised here may reach pyinfra (it would abort every host). Shared by the playbooks and
    ``keystone-checks run``.
    """
    started = time.perf_counter()
    host_report = report.HostReport(host.name)
    try:
        nodelay.enable(host)
        context = hostdata.resolve(host.name, host.data)
        host_report.roles = hostdata.roles_of(host.name, context)
        if force_fix:
            context["fix"] = True
        if on_context:
            on_context(context)
        selected = checks() if callable(checks) else checks
        plan = plan_host(selected, host_report.roles, context)
        parsed = parse_outputs(plan.checks, plan, gather(host, plan.probes))
        results = evaluate_host(selected, plan, parsed, context)
        if context.get("fix"):
            queue_fixes(host, state, selected, results, context)
        host_report.results = list(results.values())
    except KeystoneChecksError as exc:
        host_report.status, host_report.error = "error", str(exc)
    except Exception as exc:  # noqa: BLE001 - containment: other hosts must go on
        logger.error(f"{host.name}: keystone-checks internal error: {type(exc).__name__}: {exc}")
        host_report.status, host_report.error = "error", f"internal error: {type(exc).__name__}: {exc}"
    host_report.duration_s = time.perf_counter() - started
    return host_report
