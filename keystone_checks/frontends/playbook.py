"""The playbooks' front-end: what ``playbooks/<phase>.py`` and ``playbooks/fix/*.py`` call, per host,
under the pyinfra CLI.

The engine itself (host data -> plan -> one batched gather -> evaluate -> queue fixes) is
pipeline.py, shared with ``keystone-checks run``; this module picks the target and records each
host's report. Nothing raised for one check or host reaches pyinfra: an uncaught exception in
deploy code aborts every host.

The report is written when the pyinfra process exits (pyinfra has no "run finished" hook).
"""

from __future__ import annotations

import atexit
import sys
import time
from pathlib import Path
from typing import Any

from pyinfra.api.state import StateStage

from ..engine import connect_errors, hostdata, waivers
from ..engine import outcome as report
from ..engine.pipeline import Target, catalog, check_host, settle_fixes, unreachable
from ..errors import KeystoneChecksError

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
                failed = host in self.state.failed_hosts
                failure = connect_errors.failure_for(host.name) if failed else None
                reason = "could not connect (see pyinfra's output above)" if failed \
                    else "did not run (excluded or stopped before its checks)"
                self.hosts[host.name] = unreachable(host, failure, reason, _catalog_or_none())[0]
        settle_fixes(self.hosts.values(), executed)
        data = report.build(self.phase, list(self.hosts.values()), self.started, time.time(),
                            dry_run=self.fix_requested and not executed, fix_requested=self.fix_requested,
                            inventory=_inventory_argument(sys.argv))
        if self.waivers_path:
            waivers.annotate_report(data, self.waivers_path, [c.id for c in catalog()], stream=sys.stdout)
        from ..reports import Options, colour_wanted, emit_reports, parse_spec, writer

        specs: list[tuple[str, str | None]] = [("json", str(self.report_path or report.default_path(self.phase, self.started)))]
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


def _inventory_argument(argv: list[str]) -> str | None:
    """The inventory of ``pyinfra [options] INVENTORY PLAYBOOK...``: the argument just before the first
    playbook under a ``playbooks`` directory (None when the command line has another shape)."""
    for index, arg in enumerate(argv[1:], start=1):
        path = Path(arg)
        if path.suffix == ".py" and "playbooks" in path.parts and index > 1 and not argv[index - 1].startswith("-"):
            return argv[index - 1]
    return None


def _catalog_or_none():
    try:
        return catalog()
    except Exception:  # noqa: BLE001 - a broken catalog is reported on each host already
        return None


_recorders: dict[int, Recorder] = {}


def recorder_for(state, phase: str) -> Recorder:
    key = id(state)
    if key not in _recorders:
        _recorders[key] = Recorder(state, phase)
    return _recorders[key]


# -- entry point ---------------------------------------------------------------------------------


def run_phase(phase: str) -> None:
    """Run ``phase``'s checks on the current pyinfra host. Called once per host by a playbook."""
    _run(Target(phase, None))


def run_fix(name: str, check_ids: list[str]) -> None:
    """A fix playbook: evaluate ``check_ids`` (and what they depend on) and queue their fixes.

    Fixing is the point of a fix playbook, so ``fix`` is on; ``pyinfra --dry`` shows the commands
    without running them. Destructive steps still need their explicit opt-in.
    """
    _run(Target(f"fix-{name}", list(check_ids), force_fix=True))


def _run(target: Target) -> None:
    from pyinfra import host, state

    recorder = recorder_for(state, target.phase)

    def record_settings(context: dict[str, Any]) -> None:
        if context.get("report"):
            recorder.report_path = context["report"]
        if context.get("reports"):
            recorder.extra_reports = context["reports"]
        recorder.fix_requested |= bool(context.get("fix"))
        if context.get("waivers"):
            recorder.waivers_path = context["waivers"]

    recorder.add(check_host(host, state, lambda: target.checks(catalog()), target.force_fix, record_settings,
                            overrides=_cli_data()))


def _cli_data() -> dict[str, Any]:
    """``pyinfra --data`` values of this process's command line, typed by hostdata's parser (pyinfra's
    makes ``pool=123`` an int where the key is text); only the keys hostdata knows."""
    if "cli" not in _cli_data_cache:
        pairs = [item for item in hostdata.data_options(sys.argv) if item.partition("=")[0] in hostdata.KEYS]
        try:
            _cli_data_cache["cli"] = hostdata.parse_data_pairs(pairs)
        except KeystoneChecksError:  # pyinfra refuses a --data without "=" before any playbook runs
            _cli_data_cache["cli"] = {}
    return _cli_data_cache["cli"]


_cli_data_cache: dict[str, dict[str, Any]] = {}
