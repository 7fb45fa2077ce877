"""``keystone-checks run``: one phase (or playbook) through pyinfra's Python API, not its CLI.

Same engine as the playbooks (runner.check_host: hostrun.look, then fixing.HostFixes;
report.build); what this adds over ``pyinfra INVENTORY playbooks/x.py``:

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

import ast
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import KeystoneChecksError

from .paths import playbooks_dir


def patch() -> None:
    import gevent.monkey

    if not gevent.monkey.is_module_patched("socket"):
        gevent.monkey.patch_all()


# -- what to run ---------------------------------------------------------------------------------


@dataclass
class Target:
    phase: str                      # report phase name ("sweep", "fix-close-credstore-export")
    check_ids: list[str] | None     # None: every check of the phase; else a fix playbook's ids
    force_fix: bool = False


def resolve_target(target: str) -> Target:
    """A phase name, or a playbook file that calls ``run_phase("x")`` / ``run_fix("name", [ids])``."""
    from .plan import PHASES

    if target in PHASES:
        return Target(target, None)
    path = Path(target)
    if not path.exists() and (playbooks_dir() / target).exists():
        path = playbooks_dir() / target
    if not path.is_file():
        raise KeystoneChecksError(f"'{target}' is neither a phase ({', '.join(PHASES)}) nor a playbook file")
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as exc:
        raise KeystoneChecksError(f"{path}: cannot parse playbook: {exc}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            try:
                args = [ast.literal_eval(a) for a in node.args]
            except ValueError:
                continue
            if node.func.id == "run_phase" and len(args) == 1:
                return Target(args[0], None)
            if node.func.id == "run_fix" and len(args) == 2:
                return Target(f"fix-{args[0]}", list(args[1]), force_fix=True)
    raise KeystoneChecksError(f"{path}: not a keystone-checks playbook (no run_phase(...)/run_fix(...) call with literal arguments)")


# -- why a host could not be reached ------------------------------------------------------------

NO_BANNER = ("connection timed out: no SSH banner: the port accepts connections but no SSH server answered "
             "within the connect timeout (sshd hung or overloaded, another service on the port, a proxy)")

# (reason key, pattern over pyinfra's ConnectError text, operator explanation, sample symptom text
#  used to find the explaining check through diagnose). The keys are the same as
#  keystone_checks/connect_errors.py's kinds (the pyinfra-CLI path), so both paths name a failure alike.
_REASONS = [
    # paramiko's connect gives up on a silent server (TCP accepted, no SSH banner) without saying so,
    # then fails authenticating: "No existing session". Same kind as below, its own explanation.
    ("timed-out", r"No existing session|protocol banner",
     NO_BANNER,
     "ssh: connect to host 192.0.2.1 port 22: Connection timed out during banner exchange"),
    ("host-key-changed", r"host key|does not match|HostKeys",
     "SSH host key changed: the installer ISO generates new host keys on every boot (remove the old "
     "entry with `ssh-keygen -R HOST`), but it may also be an attack (man in the middle): verify the "
     "key on the console before trusting it",
     "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! Host key verification failed."),
    ("auth-rejected", r"authentication|auth fail|no authentication methods|not a valid|invalid key|Permission denied",
     "authentication rejected: the SSH key (ssh_key / ssh_user) is not accepted by the host",
     "Permission denied (publickey)."),
    ("does-not-resolve", r"resolve hostname|Name or service not known|nodename nor servname|gaierror|Temporary failure in name resolution",
     "name does not resolve: check the inventory's ssh_hostname / DNS",
     "ssh: Could not resolve hostname host: Name or service not known"),
    # paramiko's NoValidConnectionsError ("Unable to connect to port N on ADDR") wraps ECONNREFUSED
    ("connection-refused", r"Connection refused|Errno 111|Unable to connect to port",
     "connection refused: the host is up but nothing listens on the SSH port (sshd not running, wrong port, firewall REJECT)",
     "ssh: connect to host 192.0.2.1 port 22: Connection refused"),
    ("timed-out", r"timed out|timeout|Errno 110",
     "timed out: no answer (host down, wrong address, firewall DROP, network path)",
     "ssh: connect to host 192.0.2.1 port 22: Connection timed out"),
    ("no-route", r"No route to host|Network is unreachable|Errno 113|Errno 101",
     "no route to host: the network path to the host is broken (wrong address, host down, VLAN/bridge)",
     "ssh: connect to host 192.0.2.1 port 22: No route to host"),
]


def classify_connect_error(text: str) -> tuple[str, str, str]:
    """pyinfra's ConnectError text -> (reason key, operator explanation, symptom text for diagnose)."""
    for key, pattern, explanation, symptom in _REASONS:
        if re.search(pattern, text, re.I):
            return key, explanation, symptom
    return "could-not-connect", "could not connect", text


def explaining_check(symptom: str, raw: str, checks) -> str | None:
    """The catalog check whose symptoms best explain this connect failure, if any."""
    from . import diagnose

    for text in (symptom, raw):
        matches = diagnose.rank(text, checks)
        if matches:
            return matches[0].check.id
    return None


# -- progress ------------------------------------------------------------------------------------


class Progress:
    """Hosts done / total and failures so far: a redrawn line on a TTY, plain lines otherwise."""

    def __init__(self, total: int, stream=None, tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.total, self.done, self.failing, self.unreachable = total, 0, 0, 0
        self.started = time.perf_counter()

    def host(self, host_report) -> None:
        from .evaluate import Outcome

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


# -- the run -------------------------------------------------------------------------------------


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


def run(options: RunOptions, progress_factory: Callable[[int], Progress] | None = None) -> dict[str, Any]:
    """Run and return the report dict (keystone_checks/report.py shape, plus ``explained_by``)."""
    patch()
    from pyinfra.api import Config, State
    from pyinfra.api.connect import connect_all, disconnect_all
    from pyinfra.api.exceptions import PyinfraError
    from pyinfra.api.operations import run_ops
    from pyinfra.api.state import BaseStateCallback, StateStage
    from pyinfra.context import ctx_config, ctx_host

    from . import report, runner
    from .evaluate import Outcome
    from .plan import checks_for_phase, order_by_dependencies

    target = resolve_target(options.target)
    catalog = runner.catalog()
    if target.check_ids is None:
        checks = checks_for_phase(catalog, target.phase)
    else:
        by_id = {c.id: c for c in catalog}
        unknown = [i for i in target.check_ids if i not in by_id]
        if unknown:
            raise KeystoneChecksError(f"playbook {options.target}: unknown check id(s) {unknown}")
        wanted, stack = set(), list(target.check_ids)
        while stack:
            current = stack.pop()
            if current not in wanted:
                wanted.add(current)
                stack.extend(by_id[current].depends_on)
        checks = order_by_dependencies([c for c in catalog if c.id in wanted])

    inventory_path = options.inventory
    state = State(check_for_changes=False)
    inventory = load_inventory(inventory_path, state, options.data)

    config = Config(CONNECT_TIMEOUT=options.connect_timeout)
    if options.parallel:
        config.PARALLEL = options.parallel
    limit = select_hosts(inventory, options.limit, inventory_path) if options.limit else None
    connect_errors: dict[str, str] = {}

    class _Errors(BaseStateCallback):
        @staticmethod
        def host_connect_error(state, host, error):  # noqa: ARG004 - pyinfra's callback signature
            connect_errors[host.name] = str(error.args[0] if getattr(error, "args", None) else error)

    state.init(inventory, config, initial_limit=limit)
    state.add_callback_handler(_Errors())
    hosts = [h for h in inventory if state.is_host_in_limit(h)]
    progress = (progress_factory or Progress)(len(hosts))

    started = time.time()
    reports: dict[str, report.HostReport] = {}
    fix_requested = options.fix or target.force_fix
    state.set_stage(StateStage.Connect)
    try:
        connect_all(state)
    except PyinfraError as exc:
        if "No hosts remaining" not in str(exc):
            raise KeystoneChecksError(f"connecting: {exc}") from None

    explained: dict[str, str] = {}
    for host in hosts:
        if host.connected:
            continue
        raw = connect_errors.get(host.name, "could not connect")
        key, explanation, symptom = classify_connect_error(raw)
        check_id = explaining_check(symptom, raw, catalog)
        message = f"{key}: {explanation} [{raw}]"
        if check_id:
            explained[host.name] = check_id
            message += f" (see check {check_id}: keystone-checks show {check_id})"
        host_report = report.HostReport(host.name, status="unreachable", error=message)
        try:
            from . import hostdata

            host_report.roles = hostdata.roles_of(host.name, hostdata.resolve(host.name, host.data))
        except Exception:  # noqa: BLE001 - roles are informative here
            pass
        reports[host.name] = host_report
        progress.host(host_report)

    state.set_stage(StateStage.Prepare)

    def one_host(host) -> None:
        with ctx_config.use(state.config.copy()), ctx_host.use(host):
            reports[host.name] = _check_host(host, state, checks, target, options.fix)
        progress.host(reports[host.name])

    greenlets = [state.pool.spawn(one_host, h) for h in hosts if h.connected]
    import gevent

    gevent.joinall(greenlets)
    for g in greenlets:
        if g.exception is not None:  # _check_host contains everything; this is a bug
            raise KeystoneChecksError(f"internal error: {g.exception!r}")

    executed = False
    queued = any(r.outcome == Outcome.WOULD_FIX for h in reports.values() for r in h.results)
    if queued and not options.dry:
        state.set_stage(StateStage.Execute)
        try:
            run_ops(state)
        except PyinfraError as exc:
            print(f"keystone-checks: fix operations stopped: {exc}", file=sys.stderr)
        executed = True
        for host_report in reports.values():
            for r in host_report.results:
                if r.outcome == Outcome.WOULD_FIX:
                    r.outcome = Outcome.FIX_FAILED
                    r.message = f"fix operation did not complete: {r.message}"
    state.set_stage(StateStage.Disconnect)
    try:
        disconnect_all(state)
    except Exception:  # noqa: BLE001 - the results are in; a disconnect hiccup must not lose them
        pass
    data = report.build(target.phase, list(reports.values()), started, time.time(),
                        dry_run=fix_requested and not executed, fix_requested=fix_requested)
    for host in data["hosts"]:
        host["explained_by"] = explained.get(host["name"])
    return data


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


def _check_host(host, state, checks, target: Target, fix: bool):
    """The playbooks' per-host engine (runner.check_host), without their at-exit recorder."""
    from .runner import check_host

    return check_host(host, state, checks, force_fix=fix or target.force_fix)
