"""The engine both front-ends call: what to run -> per host (host data -> plan -> one batched gather ->
parse -> evaluate -> queue fixes) -> after the fixes ran, settle the ones that did not complete.

The playbooks (frontends/playbook.py, under the pyinfra CLI) and ``keystone-checks run`` (frontends/api.py, pyinfra's
Python API) differ only in how they connect, report progress and write the report; everything
that decides an outcome is here or below (plan.py, gather.py, evaluate.py, fix.py).
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyinfra import logger

from ..errors import CatalogError, KeystoneChecksError
from . import connect_errors, hostdata, nodelay, selection, waivers
from . import fix as fixing
from . import outcome as report
from .catalog import Check, load_catalog
from .fix import HostFixes
from .gather import HostTimeout, look
from .plan import checks_for_phase, with_dependencies

_catalog_cache: dict[str, list[Check] | CatalogError] = {}


def catalog() -> list[Check]:
    """The catalog, loaded once per process (a broken catalog is raised again on every call)."""
    if "checks" not in _catalog_cache:
        try:
            _catalog_cache["checks"] = load_catalog()
        except CatalogError as exc:
            _catalog_cache["checks"] = exc
    cached = _catalog_cache["checks"]
    if isinstance(cached, CatalogError):
        raise cached
    return cached


@dataclass
class Target:
    """What one run looks at: a phase, or a fix playbook's checks."""

    phase: str                      # report phase name ("sweep", "fix-close-credstore-export")
    check_ids: list[str] | None     # None: every check of the phase; else a fix playbook's ids
    force_fix: bool = False         # a fix playbook fixes without --data fix=true

    def checks(self, checks: list[Check]) -> list[Check]:
        """The target's checks and, transitively, what they depend on, dependencies first."""
        if self.check_ids is None:
            return checks_for_phase(checks, self.phase)
        return with_dependencies(checks, self.check_ids, f"fix playbook {self.phase.removeprefix('fix-')}")


def playbook_target(path: Path) -> Target:
    """What a playbook file runs, read from its ``run_phase("x")`` / ``run_fix("name", [ids])`` call
    (literal arguments, parsed, never executed). The one reader of playbooks: ``keystone-checks run
    FILE`` and coverage's list of fix playbooks both use it."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError, SyntaxError) as exc:
        raise KeystoneChecksError(f"{path}: cannot parse playbook: {exc}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            try:
                args = [ast.literal_eval(a) for a in node.args]
            except ValueError:
                continue
            if node.func.id == "run_phase" and len(args) == 1 and isinstance(args[0], str):
                return Target(args[0], None)
            if node.func.id == "run_fix" and len(args) == 2 and isinstance(args[0], str) \
                    and isinstance(args[1], (list, tuple)) and all(isinstance(i, str) for i in args[1]):
                return Target(f"fix-{args[0]}", list(args[1]), force_fix=True)
    raise KeystoneChecksError(f"{path}: not a keystone-checks playbook "
                              "(no run_phase(...)/run_fix(...) call with literal arguments)")


def check_host(host, state, checks: list[Check] | Callable[[], list[Check]], force_fix: bool = False,
               on_context: Callable[[dict[str, Any]], None] | None = None,
               overrides: dict[str, Any] | None = None) -> report.HostReport:
    """One host, start to end: host data -> plan -> one batched gather -> evaluate -> queue fixes.

    ``checks`` is the list to run or a callable returning it (called after host data resolved, so a
    broken catalog is reported on the host). Every failure becomes the host's or a check's outcome:
    nothing raised here may reach pyinfra (it would abort every host). ``overrides``: ``--data``
    values typed by hostdata (they win over the inventory's, as pyinfra's own ``--data`` does).
    """
    started = time.perf_counter()
    host_report = report.HostReport(host.name)
    try:
        nodelay.enable(host)
        if on_context:  # where the report goes is known even when the rest of the host data is bad
            on_context({k: host.data.get(k) for k in ("report", "reports", "waivers") if isinstance(host.data.get(k), str)})
        data = {name: getattr(host.data, name, None) for name in hostdata.KEYS}
        data.update(overrides or {})
        context = hostdata.resolve(host.name, data)
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


def unreachable(host, failure: connect_errors.ConnectFailure | None, reason: str = "",
                checks: list[Check] | None = None) -> tuple[report.HostReport, str | None]:
    """The report of a host that could not be reached, and the catalog check explaining why (if
    any): the classified reason when known, else ``reason``. Roles are filled when its host data
    resolves (informative only)."""
    explained = None
    if failure is not None:
        if checks:
            explained = connect_errors.explaining_check(failure, checks)
        reason = failure.as_text(explained)
    host_report = report.HostReport(host.name, status="unreachable", error=reason)
    try:
        host_report.roles = hostdata.roles_of(host.name, hostdata.resolve(host.name, host.data))
    except Exception:  # noqa: BLE001, S110 - roles are informative here
        pass
    return host_report, explained


def settle_fixes(host_reports, executed: bool) -> None:
    """After pyinfra's execute stage: fixes that did not complete become ``fix-failed`` with why."""
    for host_report in host_reports:
        fixing.settle(host_report.results, executed)
