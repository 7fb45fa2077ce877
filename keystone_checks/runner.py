"""The deploy-side engine: what ``playbooks/<phase>.py`` calls for each host.

Per host: resolve host data -> plan the phase's checks for the host's roles -> ONE remote command
gathering every fact and evaluating the checks in dependency order (hostrun.py) -> with
``--data fix=true``, queue fixes of failing checks, re-checked at execute time (fixing.py) ->
record. Nothing raised for one check or host reaches pyinfra: an uncaught exception in deploy code
aborts every host (see shared notes on pyinfra 3.10).

The report is written when the pyinfra process exits (pyinfra has no "run finished" hook).
"""

from __future__ import annotations

import atexit
import sys
import time
from typing import Any

from pyinfra import logger
from pyinfra.api.state import StateStage

from . import connect_errors, hostdata, nodelay, report, selection, waivers
from .catalog import Check, load_catalog
from .errors import CatalogError, KeystoneChecksError
from .evaluate import Outcome
from .fixing import HostFixes
from .hostrun import HostTimeout, look
from .plan import checks_for_phase, order_by_dependencies

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
        self.waivers_path: str = ""  # --data waivers=PATH: the report lists its expired entries
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
        if self.waivers_path:
            waivers.annotate_report(data, self.waivers_path, [c.id for c in catalog()], stream=sys.stdout)
        from .reports import Options, colour_wanted, emit_reports, parse_spec, writer

        specs = [("json", str(self.report_path or report.default_path(self.phase, self.started)))]
        for spec in filter(None, (part.strip() for part in self.extra_reports.split(","))):
            try:
                specs.append(parse_spec(spec))
            except ValueError as exc:
                print(f"keystone-checks: host data 'reports': {exc}", file=sys.stderr)

        # pyinfra owns -v/-q on its command line: the table here is the default one
        options = Options(colour=colour_wanted(sys.stdout), own_exit=False)
        sys.stdout.write("\n" + writer("console")(data, options))
        sys.stdout.flush()
        emit_reports(data, specs, stderr=sys.stdout, options=options)  # every format attempted; failures named one by one


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
        if context.get("waivers"):
            recorder.waivers_path = context["waivers"]

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
        if on_context:  # where the report goes is known even when the rest of the host data is bad
            on_context({k: host.data.get(k) for k in ("report", "reports", "waivers") if isinstance(host.data.get(k), str)})
        context = hostdata.resolve(host.name, host.data)
        host_report.roles = hostdata.roles_of(host.name, context)
        if force_fix:
            context["fix"] = True
        if on_context:
            on_context(context)
        selected = checks() if callable(checks) else checks
        # --checks/--tags/--severity (host data): the selected checks plus their dependencies as gates
        selected, gates = selection.narrow(selection.from_context(context), selected, catalog(),
                                           what="host data checks/tags/severity")
        results = look(host, selected, host_report.roles, context)
        selection.mark_gates(results.values(), gates)
        waivers.apply_context(results.values(), host.name, context)  # before fixes: a waived failure is not repaired
        if context.get("fix"):
            HostFixes(host, state, selected, results, context, host_report.roles).queue()
        host_report.results = list(results.values())
    except HostTimeout as exc:  # the host stalled; every other host's results are unaffected
        host_report.status, host_report.error = "timeout", str(exc)
    except KeystoneChecksError as exc:
        host_report.status, host_report.error = "error", str(exc)
    except Exception as exc:  # noqa: BLE001 - containment: other hosts must go on
        logger.error(f"{host.name}: keystone-checks internal error: {type(exc).__name__}: {exc}")
        host_report.status, host_report.error = "error", f"internal error: {type(exc).__name__}: {exc}"
    host_report.duration_s = time.perf_counter() - started
    return host_report
