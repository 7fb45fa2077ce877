"""``keystone-checks run``: one phase (or playbook) through pyinfra's Python API, not its CLI.

Same engine as the playbooks (pipeline.py: check_host, then settle_fixes; report.build); what this
adds over ``pyinfra INVENTORY playbooks/x.py``:

* hosts that cannot be reached are reported one by one with the *reason* (name does not resolve,
  connection refused, timed out, authentication rejected, host key changed) and, where the
  catalog has one, the check that explains it (``explained_by`` in the JSON report);
* a live progress line on a terminal (hosts done / total, failures so far), plain lines otherwise;
* the report is returned (and written in any number of formats) instead of written at exit;
* the process exits with the Nagios code (report ``summary.exit_code``).

``gevent.monkey.patch_all()`` must run before anything imports ssl/socket users: ``cli.cmd_run``
calls :func:`patch` first.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import KeystoneChecksError
from ..paths import playbooks_dir

if TYPE_CHECKING:  # pipeline imports pyinfra: not before patch()
    from ..engine.pipeline import Target


def patch() -> None:
    import gevent.monkey

    if not gevent.monkey.is_module_patched("socket"):
        gevent.monkey.patch_all()


# -- what to run ---------------------------------------------------------------------------------


def resolve_target(target: str) -> Target:
    """A phase name, or a playbook file that calls ``run_phase("x")`` / ``run_fix("name", [ids])``."""
    from ..engine.pipeline import Target, playbook_target
    from ..engine.plan import PHASES

    if target in PHASES:
        return Target(target, None)
    path = Path(target)
    if not path.exists():
        # a name under playbooks/ ("sweep.py", "fix/x.py") or a repository-relative path
        # ("playbooks/fix/x.py", what reports print), in a checkout or an installed wheel alike
        for candidate in (playbooks_dir() / target, playbooks_dir().parent / target):
            if candidate.is_file():
                path = candidate
                break
    if not path.is_file():
        raise KeystoneChecksError(f"'{target}' is neither a phase ({', '.join(PHASES)}) nor a playbook file")
    return playbook_target(path)


# -- progress ------------------------------------------------------------------------------------


class Progress:
    """Hosts done / total and failures so far: a redrawn line on a TTY, plain lines otherwise."""

    def __init__(self, total: int, stream=None, tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.total, self.done, self.failing, self.unreachable = total, 0, 0, 0
        self.started = time.perf_counter()

    def host(self, host_report) -> None:
        from ..engine.evaluate import Outcome

        self.done += 1
        bad = [r for r in host_report.results if r.outcome in (Outcome.FAIL, Outcome.FIX_FAILED, Outcome.ERROR)]
        self.failing += len(bad)
        self.unreachable += host_report.status == "unreachable"
        elapsed = time.perf_counter() - self.started
        if self.tty:
            self.stream.write(f"\r\033[K[{self.done}/{self.total} hosts] {self.failing} failing/error check(s), "
                              f"{self.unreachable} unreachable  {elapsed:.1f}s")
            if self.done == self.total:
                self.stream.write("\n")
        else:
            what = host_report.status if host_report.status != "ok" else f"{len(bad)} failing/error check(s)"
            self.stream.write(f"[{self.done}/{self.total}] {host_report.name}: {what}\n")
        self.stream.flush()


# -- the run ----------------------------------------------------------------------------------------


@dataclass
class RunOptions:
    target: str
    inventory: str
    limit: list[str] = field(default_factory=list)
    fix: bool = False
    dry: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    connect_timeout: int = 10
    parallel: int = 0


@dataclass
class Session:
    """One pyinfra API run: its state, inventory, the hosts in the limit, why a host did not connect."""

    state: Any
    inventory: Any
    hosts: list
    connect_errors: dict[str, str] = field(default_factory=dict)


def run(options: RunOptions, progress_factory: Callable[[int], Progress] | None = None) -> dict[str, Any]:
    """Run and return the report dict (keystone_checks/engine/outcome.py shape, plus ``explained_by``)."""
    patch()
    from ..engine import outcome as report
    from ..engine import pipeline

    target = resolve_target(options.target)
    catalog = pipeline.catalog()
    checks = target.checks(catalog)
    session = open_session(options.inventory, options.limit, options.data, options.connect_timeout, options.parallel)
    progress = (progress_factory or Progress)(len(session.hosts))
    started = time.time()
    checked = connect_and_check(session, checks, options.fix or target.force_fix, progress)
    reports, explained = report_unreachable(session, catalog, progress)
    reports.update(checked)
    executed = run_fixes(session, reports, options.dry)
    close(session)
    fix_requested = options.fix or target.force_fix
    data = report.build(target.phase, list(reports.values()), started, time.time(),
                        dry_run=fix_requested and not executed, fix_requested=fix_requested,
                        inventory=options.inventory)
    for host in data["hosts"]:
        host["explained_by"] = explained.get(host["name"])
    return data


def open_session(inventory_path: str, limit: list[str] | None, data: dict[str, Any] | None = None,
                 connect_timeout: int = 10, parallel: int = 0) -> Session:
    """Load the inventory, apply ``--limit``, set up pyinfra's state (not yet connected)."""
    from pyinfra.api import Config, State
    from pyinfra.api.state import BaseStateCallback

    state = State(check_for_changes=False)
    inventory = load_inventory(inventory_path, state, data)
    config = Config(CONNECT_TIMEOUT=connect_timeout)
    if parallel:
        config.PARALLEL = parallel
    chosen = select_hosts(inventory, limit, inventory_path) if limit else None
    session = Session(state, inventory, [])

    class _Errors(BaseStateCallback):
        @staticmethod
        def host_connect_error(state, host, error):  # noqa: ARG004 - pyinfra's callback signature
            session.connect_errors[host.name] = str(error.args[0] if getattr(error, "args", None) else error)

    state.init(inventory, config, initial_limit=chosen)
    state.add_callback_handler(_Errors())
    session.hosts = [h for h in inventory if state.is_host_in_limit(h)]
    return session


def connect_and_check(session: Session, checks, force_fix: bool, progress: Progress | None = None) -> dict:
    """Each host is checked as soon as it is connected (pyinfra's connect_all waits for the slowest
    host before anything runs): one greenlet per host connects, then runs pipeline.check_host. A host
    that cannot be reached keeps its reason in ``session.connect_errors`` (report_unreachable)."""
    import gevent
    from pyinfra.api.exceptions import PyinfraError
    from pyinfra.api.state import StateStage
    from pyinfra.context import ctx_config, ctx_host

    from ..engine import pipeline

    reports = {}
    session.state.set_stage(StateStage.Prepare)

    def one_host(host) -> None:
        host.connect()
        if not host.connected:
            return
        session.state.activate_host(host)
        with ctx_config.use(session.state.config.copy()), ctx_host.use(host):
            reports[host.name] = pipeline.check_host(host, session.state, checks, force_fix=force_fix)
        if progress is not None:
            progress.host(reports[host.name])

    greenlets = [session.state.pool.spawn(one_host, h) for h in session.hosts]
    gevent.joinall(greenlets)
    for g in greenlets:
        if g.exception is not None:  # check_host contains everything; this is a bug
            raise KeystoneChecksError(f"internal error: {g.exception!r}")
    try:
        session.state.fail_hosts({h for h in session.hosts if not h.connected}, activated_count=len(session.hosts))
    except PyinfraError as exc:
        if "No hosts remaining" not in str(exc):
            raise KeystoneChecksError(f"connecting: {exc}") from None
    return reports


def failure_of(session: Session, host):
    """Why ``host`` did not connect, classified (the one classifier: connect_errors.classify)."""
    from ..engine import connect_errors

    return connect_errors.classify(session.connect_errors.get(host.name, "could not connect"))


def report_unreachable(session: Session, catalog, progress: Progress) -> tuple[dict, dict[str, str]]:
    """A report per host that did not connect (with its reason), and the check explaining each."""
    from ..engine import pipeline

    reports, explained = {}, {}
    for host in session.hosts:
        if host.connected:
            continue
        host_report, check_id = pipeline.unreachable(host, failure_of(session, host), checks=catalog)
        if check_id:
            explained[host.name] = check_id
        reports[host.name] = host_report
        progress.host(host_report)
    return reports, explained


def run_fixes(session: Session, reports: dict, dry: bool) -> bool:
    """Run the queued fixes (unless ``dry``); whether pyinfra's execute stage ran. A fix that did not
    complete is settled as fix-failed with its command's error (pipeline.settle_fixes)."""
    from pyinfra.api.exceptions import PyinfraError
    from pyinfra.api.operations import run_ops
    from pyinfra.api.state import StateStage

    from ..engine import pipeline
    from ..engine.evaluate import Outcome

    queued = any(r.outcome == Outcome.WOULD_FIX for h in reports.values() for r in h.results)
    if not queued or dry:
        return False
    session.state.set_stage(StateStage.Execute)
    try:
        run_ops(session.state)
    except PyinfraError as exc:
        # "No hosts remaining!" when every host with a fix failed one: each check says why
        print(f"keystone-checks: fix operations stopped: {exc} (each failed fix's error is in its result)",
              file=sys.stderr)
    pipeline.settle_fixes(reports.values(), executed=True)
    return True


def close(session: Session) -> None:
    from pyinfra.api.connect import disconnect_all
    from pyinfra.api.state import StateStage

    session.state.set_stage(StateStage.Disconnect)
    try:
        disconnect_all(session.state)
    except Exception:  # noqa: BLE001 - the results are in; a disconnect hiccup must not lose them
        pass


def load_inventory(path: str, state, data=None):
    """A pyinfra inventory (file, ``@local``, comma-separated hosts) or a KeystoneChecksError naming it."""
    from pyinfra.context import ctx_inventory, ctx_state
    from pyinfra_cli.inventory import make_inventory

    if not (Path(path).exists() or "@" in path or "," in path):
        raise KeystoneChecksError(f"inventory '{path}' not found")
    ctx_state.set(state)  # pyinfra's inventory loader records the file it executes on the state
    try:
        inventory = make_inventory(path, override_data=dict(data or {}) or None, cwd=str(Path.cwd()))
    except Exception as exc:  # pyinfra's CliError, a syntax error in the inventory file, ...
        raise KeystoneChecksError(f"cannot load inventory {path}: {exc}") from None
    ctx_inventory.set(inventory)
    return inventory


def select_hosts(inventory, patterns: list[str], inventory_path: str) -> list:
    """The hosts ``--limit`` names: host names, globs or groups."""
    from fnmatch import fnmatch

    chosen = [h for h in inventory if any(fnmatch(h.name, p) or h in _group(inventory, p) for p in patterns)]
    if not chosen:
        raise KeystoneChecksError(f"--limit {','.join(patterns)} matches no host in {inventory_path}")
    return chosen


def _group(inventory, name: str) -> list:
    try:
        return inventory.get_group(name)
    except Exception:  # noqa: BLE001 - NoGroupError: a name pattern, not a group
        return []
