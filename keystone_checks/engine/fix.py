"""Fixes: queue each failing check's fix, re-check it after its operations ran, then evaluate (and
fix) the checks it was blocking, in the same run.

Plan time (pyinfra's prepare stage): each failing check's operations are queued, then a
``python.call`` re-check. ``pyinfra --dry`` stops here; the report lists the exact commands and,
under ``then``, the checks waiting behind each fix.
Execute time: the re-check gathers again (fixed / fix-failed). When the fix worked, the checks that
were skipped because of it are evaluated now (one more gather) and their fixes run at once as
nested operations (pyinfra executes an operation called from a callback immediately). So one fix
run repairs a whole chain - pool imported -> credstore opened, mounted -> keys loaded -> datasets
mounted - instead of one layer per run.

Only ``safe`` fixes run that way. A disruptive or destructive fix must have been in the plan the
operator saw (the dry run lists its exact commands): one that becomes applicable only after another
fix is reported as refused, for the next run. Refusals (destructive, force import) apply at every layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyinfra.api.exceptions import NestedOperationError
from pyinfra.operations import python as python_ops

from .. import secrets
from ..operations import resolve_operation
from . import hostdata, templating, waivers
from .catalog import Check, Step
from .evaluate import CheckResult, Outcome
from .gather import blocking_dependencies, look
from .plan import order_by_dependencies


@dataclass
class HostFixes:
    """One host's fixes. ``results`` is the host's result table: fixes update its entries in place."""

    host: Any
    state: Any
    checks: list[Check]
    results: dict[str, CheckResult]
    context: dict[str, Any]
    roles: list[str]

    def queue(self) -> None:
        """Plan time: queue the fix of every failing check that has one."""
        for check in order_by_dependencies(self.checks):
            result = self.results.get(check.id)
            if result is not None and result.outcome == Outcome.FAIL and check.fix:
                self._fix(check, result, now=False)

    # -- one check ----------------------------------------------------------------------------

    def _fix(self, check: Check, result: CheckResult, now: bool) -> None:
        fix = check.fix
        assert fix is not None  # only checks with a fix are queued
        if fix.manual is not None:
            # the text names this host's pool, datasets and paths (host-data templates)
            try:
                text = str(templating.render(fix.manual, self.context))
            except templating.TemplateProblem:
                text = fix.manual
            result.fix = {"manual": text.strip()}
            return
        risk = fix.risk or "safe"
        refusal = refusal_for(risk, self.context, fix.steps)
        if now and risk != "safe":
            # Only fixes the operator could see in the plan may disrupt or destroy anything.
            refusal = (f"{risk} fix not run: it was not in the plan shown before this run (the check could "
                       "only be evaluated after another fix); run again to review it, with --dry first")
        if refusal:
            result.fix = {"risk": risk, "refused": refusal}
            return
        commands: list[str] = []
        result.fix = {"risk": risk, "summary": fix.summary, "commands": commands}
        metas: list[Any] = []
        _QUEUED[id(result)] = (result, metas)
        try:
            for step in fix.steps:
                op = resolve_operation(step.op)
                args = templating.render(step.args, self.context)
                # _timeout: a fix command that never returns fails this host's fix (pyinfra stops
                # reading it) instead of holding every later operation of every host
                meta = op(**args, name=f"fix {check.id}: {step.op}", _timeout=fix_timeout(self.context))  # runs at once when `now`
                metas.append(meta)
                commands.extend(_ran_commands(meta) if now else _planned_commands(self.state, self.host, meta))
        except NestedOperationError as exc:
            # the nested operation ran and failed: its output is on its meta, found by its hash
            try:
                metas.append(self.state.get_op_data_for_host(self.host, exc.args[0]).operation_meta)
            except Exception:  # noqa: BLE001 - without its output the failure is still reported
                pass
            _mark_failed(result, "fix operation failed on the host")
            return
        except Exception as exc:  # noqa: BLE001 - a fix that cannot be queued is reported, never raised
            result.fix = {"risk": risk, "refused": f"could not queue fix: {exc}"}
            if now:
                result.outcome = Outcome.FIX_FAILED
            return
        if now:
            self.recheck(check, result)
            return
        waiting = self._waiting_behind(check.id)
        if waiting:
            result.fix["then"] = waiting
        python_ops.call(name=f"re-check {check.id}", function=self.recheck, check=check, result=result)
        result.outcome = Outcome.WOULD_FIX

    def recheck(self, check: Check, result: CheckResult) -> None:
        """Execute time, after the fix's operations: gather again, decide fixed / fix-failed."""
        _QUEUED.pop(id(result), None)  # its operations succeeded: nothing to explain later
        try:
            again = look(self.host, [check], self.roles, self.context,
                         doing=f"re-checking {check.id} after its fix")[check.id]
        except Exception as exc:  # noqa: BLE001
            result.outcome, result.message = Outcome.FIX_FAILED, f"re-check failed: {exc}"
            return
        result.evidence = {"before": result.evidence, "after": again.evidence}
        if again.outcome != Outcome.PASS:
            result.outcome, result.message = Outcome.FIX_FAILED, f"still failing after fix: {again.message}"
            return
        result.outcome, result.message = Outcome.FIXED, f"fixed (was: {result.message})"
        self._evaluate_unblocked(check.id)

    # -- the checks a fix unblocks ------------------------------------------------------------

    def _evaluate_unblocked(self, fixed_id: str) -> None:
        while True:
            ready = [c for c in self.checks if self._blocked(c) and not blocking_dependencies(c, self.results)]
            if not ready:
                return
            fresh = look(self.host, order_by_dependencies(ready), self.roles, self.context, self.results)
            for check in ready:
                result = self.results[check.id]
                gate_for = result.gate_for  # the selection's bookkeeping survives the re-evaluation
                vars(result).update(vars(fresh[check.id]))
                result.gate_for = gate_for
                result.message = f"evaluated after the fix of {fixed_id}: {result.message}"
            waivers.apply_context([self.results[c.id] for c in ready], self.host.name, self.context)
            for check in ready:
                result = self.results[check.id]
                if result.outcome == Outcome.FAIL and check.fix:
                    self._fix(check, result, now=True)

    def _blocked(self, check: Check) -> bool:
        result = self.results.get(check.id)
        return result is not None and result.outcome == Outcome.SKIPPED and not result.gates_nothing

    def _waiting_behind(self, check_id: str) -> list[str]:
        """Checks skipped now that depend, directly or not, on ``check_id``."""
        waiting: list[str] = []
        frontier = {check_id}
        while frontier:
            frontier = {c.id for c in self.checks if set(c.depends_on) & frontier
                        and c.id not in waiting and self._blocked(c)}
            waiting.extend(sorted(frontier))
        return waiting


FIX_TIMEOUT = 900  # seconds per fix command when host data sets no fix_timeout


def fix_timeout(context: dict[str, Any]) -> int:
    """Seconds one fix operation's command may take on a host (host data ``fix_timeout``; pyinfra
    wants whole seconds)."""
    return int(context.get("fix_timeout") or FIX_TIMEOUT)


# -- consent ---------------------------------------------------------------------------------------


def refusal_for(risk: str, context: dict[str, Any], steps=()) -> str | None:
    """Why a fix must not be queued for this host, or None. Destructive fixes need the run's opt-in
    AND the operator naming this host and the inventory's disk (``destructive_device=HOST:DISK``:
    a device name alone could match every host of the run); an operation that force-imports a pool
    (``forces_import``) needs its own consent: it can corrupt a pool really in use elsewhere."""
    if forces_import(steps) and context.get("allow_force_import") is not True:
        return ("force import refused: `zpool import -f` can corrupt a pool in use on another machine; "
                "rerun with --data allow_force_import=true only if you are sure it is not")
    if risk != "destructive":
        return None
    host_name = str(context.get("host", ""))
    if context.get("allow_destructive") is not True:
        return ("destructive fix refused: rerun with --data allow_destructive=true and "
                f"--data destructive_device={host_name}:<disk>")
    disk, named = context.get("disk"), context.get("destructive_device")
    if not disk:
        return "destructive fix refused: the inventory declares no disk (host data 'disk')"
    if not named:
        return f"destructive fix refused: name this host and its disk with --data destructive_device={host_name}:<disk>"
    device = hostdata.consented_device(named, host_name)
    if device is None:
        return (f"destructive fix refused: destructive_device {named!r} does not name host {host_name!r} "
                f"(write {host_name}:<disk>; a device alone could match every host of the run)")
    if device != disk:
        return f"destructive fix refused: destructive_device names {device!r} for {host_name}, not the inventory's disk {disk!r}"
    return None


def forces_import(steps) -> bool:
    """Whether any step's operation always runs ``zpool import -f`` (its ``forces_import`` attribute)."""
    for step in steps or ():
        try:
            op = resolve_operation(step.op if isinstance(step, Step) else str(step.get("op", "")))
        except LookupError:
            continue  # reported when the fix is queued
        if getattr(op, "forces_import", False):
            return True
    return False


# -- fixes that did not complete ------------------------------------------------------------------

# id(result) -> (result, the operations queued for its fix): after pyinfra ran them, why a fix that
# did not complete failed is read from its operations' output.
_QUEUED: dict[int, tuple[CheckResult, list[Any]]] = {}


def settle(results, executed: bool) -> None:
    """After the operations ran (``executed``): a fix still ``would-fix`` did not complete (its
    operation failed, or pyinfra stopped the host before it): ``fix-failed``, with the failing
    command's own error text in ``fix["error"]``. The one place both front-ends turn would-fix
    into fix-failed."""
    if not executed:
        return
    for result in results:
        if result.outcome == Outcome.WOULD_FIX:
            _mark_failed(result, "fix operation did not complete")


def _mark_failed(result: CheckResult, what: str) -> None:
    entry = _QUEUED.pop(id(result), None)
    error = failure_text(entry[1]) if entry and entry[0] is result else None
    if error is not None:
        what = "fix operation failed on the host"
    else:
        error = ("not run: an earlier operation on this host failed or the host was dropped "
                 "(pyinfra stops a host at its first failed operation)")
    result.outcome = Outcome.FIX_FAILED
    result.message = f"{what}: {error.splitlines()[-1] if error else ''} (was: {result.message})"
    result.fix = {**(result.fix or {}), "error": error}


ERROR_LINES = 20  # lines of a failing command's output kept in the report


def failure_text(metas: list[Any]) -> str | None:
    """The output of the first of ``metas`` (pyinfra OperationMeta) that ran and failed: its stderr
    (else stdout), last :data:`ERROR_LINES` lines, secrets redacted. None when none of them failed."""
    for meta in metas:
        if getattr(meta, "_success", None) is not False:
            continue
        output = getattr(meta, "_combined_output", None)
        lines = list(getattr(output, "stderr_lines", None) or getattr(output, "stdout_lines", None) or [])
        text = "\n".join(line.rstrip() for line in lines[-ERROR_LINES:] if line.strip())
        return secrets.redact(text) if text else "the command failed without output (see pyinfra's output)"
    return None


# -- the commands a fix runs -------------------------------------------------------------------------


def _planned_commands(state, host, meta) -> list[str]:
    """The exact commands a queued operation will run on this host (for dry runs and reports)."""
    try:
        op_data = state.get_op_data_for_host(host, meta._hash)
        return [_masked(c) for c in op_data.command_generator()]
    except Exception as exc:  # noqa: BLE001 - listing is best effort; the op itself still runs
        return [f"(could not list commands: {exc})"]


def _ran_commands(meta) -> list[str]:
    """The commands an operation that already ran (nested, at execute time) executed."""
    return [_masked(c) for c in (meta._commands or [])]


def _masked(command) -> str:
    return str(getattr(command, "get_masked_value", lambda: command)())
