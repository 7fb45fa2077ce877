"""``keystone-checks``: the operator's command line around the same engine the playbooks use.

Every expected failure prints one clear message and exits non-zero; no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import __version__
from ..engine import hostdata
from ..errors import KeystoneChecksError

EXIT_UNKNOWN = 3  # report.EXIT_UNKNOWN; not imported so that a broken install still exits UNKNOWN from main()


def cmd_validate(args) -> int:
    from ..engine.catalog import DEFAULT_CHECKS_DIR, validate

    paths = [Path(p) for p in args.paths] or [DEFAULT_CHECKS_DIR]
    # files named on their own join the catalog: their ids, depends_on and cycles are checked against it
    checks, problems = validate(paths, against=[DEFAULT_CHECKS_DIR] if args.paths and not args.alone else None)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in check files; {len(checks)} file(s) valid", file=sys.stderr)
        return 1
    print(f"ok: {len(checks)} check(s) valid")
    return 0


def _catalog(args):
    from ..engine.catalog import DEFAULT_CHECKS_DIR, validate

    checks, problems = validate([Path(args.catalog)] if getattr(args, "catalog", None) else [DEFAULT_CHECKS_DIR])
    if problems:
        raise KeystoneChecksError("the check catalog is broken; run `keystone-checks validate`:\n" + "\n".join(map(str, problems)))
    return checks


def _check_phase_role(phase: str | None, role: str | None) -> None:
    """A phase or role name that does not exist is a usage error naming the valid ones, not an empty list."""
    from ..engine.plan import PHASES

    if phase and phase not in PHASES:
        raise KeystoneChecksError(f"unknown phase {phase!r}; valid phases: {', '.join(PHASES)}")
    if role and role not in hostdata.ROLES:
        raise KeystoneChecksError(f"unknown role {role!r}; valid roles: {', '.join(hostdata.ROLES)}")


def _selection(args):
    from ..engine.selection import Selection

    return Selection.from_values(",".join(args.checks), ",".join(args.tags), args.severity)


def cmd_list(args) -> int:
    from ..engine import selection as sel
    from ..engine.plan import checks_for_phase

    _check_phase_role(args.phase, args.role)
    catalog = _catalog(args)
    candidates = checks_for_phase(catalog, args.phase) if args.phase else catalog
    chosen = _selection(args)
    if args.phase and not chosen:
        candidates = [c for c in candidates if args.phase in c.phases]  # without a selection: the phase's own
    listed, gates = sel.narrow(chosen, candidates, catalog, what="list")
    checks = [c for c in listed if not args.role or args.role in c.roles]
    if args.json:
        print(json.dumps([{"id": c.id, "title": c.title, "severity": c.severity, "phases": c.phases,
                           "roles": c.roles, "tags": sel.tags_of(c), "guide": c.guide,
                           **({"gate_for": sorted(gates[c.id])} if c.id in gates else {})} for c in checks], indent=2))
        return 0
    for c in checks:
        gate = f"  (gate for {', '.join(sorted(gates[c.id]))})" if c.id in gates else ""
        print(f"{c.id:<40} {c.severity:<8} {','.join(c.roles):<28} {c.title}{gate}")
    print(f"{len(checks)} check(s)" + (f", {len(gates)} of them gate(s) the selection depends on" if gates else ""))
    return 0


def cmd_show(args) -> int:
    by_id = {c.id: c for c in _catalog(args)}
    check = by_id.get(args.id)
    if check is None:
        close = [i for i in by_id if args.id in i or i in args.id]
        hint = f" (did you mean: {', '.join(close[:5])}?)" if close else " (see `keystone-checks list`)"
        raise KeystoneChecksError(f"no check with id '{args.id}'{hint}")
    print(f"{check.id}: {check.title}")
    print(f"  severity: {check.severity}   phases: {', '.join(check.phases)}   roles: {', '.join(check.roles)}")
    from ..engine.selection import tags_of

    print(f"  tags:     {', '.join(tags_of(check)) or '-'}   (select with --tags)")
    cause = f" > {check.guide['cause']}" if check.guide.get("cause") else ""
    print(f"  guide:    {check.guide['document']} > {check.guide['section']}{cause}")
    print(f"  why:      {check.why}")
    for name, spec in check.gather.items():
        print(f"  looks at: {name} = {spec.fact}({json.dumps(spec.args)})")
    print(f"  expects:  {json.dumps(check.expect)}")
    if check.depends_on:
        print(f"  after:    {', '.join(check.depends_on)}")
    if check.requires_data:
        from ..engine.plan import data_names

        print(f"  needs:    host data {', '.join(data_names(k).replace(chr(39), '') for k in check.requires_data)} "
              "(not applicable when empty)")
    if check.applies_when:
        print(f"  applies:  when {check.applies_when['description']} "
              f"({check.applies_when['gather']}: {json.dumps(check.applies_when['schema'])})")
    from ..engine.catalog import describe_fix

    fix = describe_fix(check)
    if fix.kind == "manual":
        print(f"  fix (manual): {fix.text}")
    elif fix.kind == "automated":
        print(f"  fix ({fix.risk}): " + " -> ".join(f"{s.op}({json.dumps(s.args)})" for s in fix.steps))
        print(f"  fix runs: {fix.command}")
    for item in check.prevention:
        print(f"  prevent:  {item}")
    return 0


def cmd_coverage(args) -> int:
    from ..tools import coverage

    return coverage.main(list(args.rest))


def cmd_docs(args) -> int:
    from ..tools import docs

    checks = _catalog(args)
    outputs = [(Path(args.output) if args.output else docs.DEFAULT_PATH, docs.render(checks), f"{len(checks)} checks")]
    # --output alone names the catalog page only; the fact reference goes where --facts-output says
    facts_path = Path(args.facts_output) if args.facts_output else None if args.output else docs.DEFAULT_FACTS_PATH
    if facts_path is not None:
        from ..facts import FACTS

        try:
            outputs.append((facts_path, docs.render_facts(), f"{len(FACTS)} facts"))
        except FileNotFoundError as exc:
            raise KeystoneChecksError(f"cannot generate the fact reference: {exc} (or pass --output alone)") from None
    if args.check:
        stale = [path for path, text, _ in outputs
                 if (path.read_text(encoding="utf-8") if path.exists() else "") != text]
        for path in stale:
            print(f"{path} is stale: regenerate it with `keystone-checks docs` and commit it", file=sys.stderr)
        if stale:
            return 1
        for path, _, what in outputs:
            print(f"ok: {path} is up to date ({what})")
        return 0
    from ..engine.outcome import write_atomic

    for path, text, what in outputs:
        write_atomic(path, text)
        print(f"wrote {path} ({what})")
    return 0


def cmd_diagnose(args) -> int:
    from ..tools import diagnose

    return diagnose.main(args, _catalog(args))


def _report_specs(args) -> list[tuple[str, str | None]]:
    """``--report FORMAT[:PATH]`` options (default: the console table), unknown formats refused."""
    from ..reports import parse_spec

    try:
        return [parse_spec(s) for s in args.report] or [("console", None)]
    except ValueError as exc:
        raise KeystoneChecksError(str(exc)) from None


# -- console output flags (run, merge) --------------------------------------------------------------


def _add_output_flags(p) -> None:
    g = p.add_argument_group("console output")
    quiet = g.add_mutually_exclusive_group()
    quiet.add_argument("-q", "--quiet", action="store_true",
                       help="only what fails (failing checks, errors, hosts not checked), the roll-up and totals")
    quiet.add_argument("-v", "--verbose", action="store_true",
                       help="also list the checks skipped because a dependency did not pass or not for the host's role")
    g.add_argument("--no-color", "--no-colour", dest="no_color", action="store_true",
                   help="no ANSI colour (also: NO_COLOR set, or stdout not a terminal)")


def _output_options(args):
    from ..reports import Options, colour_wanted

    return Options(colour=colour_wanted(sys.stdout, args.no_color), verbose=args.verbose, quiet=args.quiet)


def _limit_patterns(args) -> list[str]:
    """``--limit`` options: repeatable and comma-separated."""
    return [p for item in args.limit for p in item.split(",") if p]


def cmd_run(args) -> int:
    from . import api as apirun

    apirun.patch()  # gevent first: before pyinfra/paramiko import socket and ssl users
    from ..reports import emit_reports

    specs = _report_specs(args)
    if not any(name == "console" for name, _ in specs) and not any(path in (None, "-") for _, path in specs):
        specs.insert(0, ("console", None))  # the operator at a terminal always sees the table
    data = hostdata.parse_data_pairs(args.data)
    waivers_path = _run_selection(args, data, apirun)
    options = apirun.RunOptions(target=args.target, inventory=args.inventory,
                                limit=_limit_patterns(args),
                                fix=args.fix, dry=args.dry, data=data,
                                connect_timeout=args.connect_timeout)
    import logging

    logging.getLogger("pyinfra").setLevel(logging.CRITICAL)  # reasons are in the report, not in pyinfra's log lines
    result = apirun.run(options)
    if waivers_path:
        from ..engine import pipeline, waivers

        waivers.annotate_report(result, waivers_path, [c.id for c in pipeline.catalog()], stream=sys.stderr)
    ok = emit_reports(result, specs, options=_output_options(args))
    return result["summary"]["exit_code"] if ok else EXIT_UNKNOWN


def _run_selection(args, data: dict, apirun) -> str:
    """Check ``run``'s selection, roles, waivers and --dry up front (a usage error exits 3 before any
    host is contacted), then hand them to the engine as host data for every host. Returns the waivers
    file ('' for none)."""
    from ..engine import pipeline, waivers
    from ..engine import selection as sel
    from ..engine.plan import checks_for_phase

    target = apirun.resolve_target(args.target)
    if args.dry and not args.fix and not target.force_fix:
        raise KeystoneChecksError("--dry lists the fix commands without running them: give --fix --dry "
                                  "(a check-only run changes nothing already)")
    if args.role:
        roles = [r.strip() for item in args.role for r in item.split(",") if r.strip()]
        for role in roles:
            _check_phase_role(None, role)
        data["role"] = roles
    if "role" in data:
        problem = hostdata.check_value(hostdata.KEYS["role"], data["role"]) \
            if isinstance(data["role"], (str, list)) else f"expected a role name or a list, got {data['role']!r}"
        if problem:
            raise KeystoneChecksError(f"role: {problem}")
    chosen = _selection(args)
    catalog = pipeline.catalog()
    if chosen:
        if target.check_ids is None:
            candidates = checks_for_phase(catalog, target.phase)
        else:
            candidates = sel.narrow(sel.Selection(checks=list(target.check_ids)), catalog, catalog)[0]
        sel.narrow(chosen, candidates, catalog, what=f"run {args.target}")
        data.update(checks=chosen.checks, tags=chosen.tags, severity=chosen.severity)
    path = args.waivers or data.get("waivers") or ""
    if path:
        loaded = waivers.load_cached(str(path), [c.id for c in catalog])
        data["waivers"] = str(path)
        for line in waivers.expired_lines(loaded):
            print(f"keystone-checks: {line}", file=sys.stderr)
    return str(path)


def cmd_merge(args) -> int:
    from ..reports import emit_reports
    from ..tools import merge

    specs = _report_specs(args)
    shards = [(path, merge.load_shard(path)) for path in args.reports]
    expected = None
    if args.inventory:
        from pyinfra.api import State

        from .api import load_inventory, select_hosts

        inventory = load_inventory(args.inventory, State(check_for_changes=False))
        limit = _limit_patterns(args)
        expected = [h.name for h in (select_hosts(inventory, limit, args.inventory) if limit else inventory)]
    elif args.limit:
        raise KeystoneChecksError("merge: --limit selects hosts of the inventory; give -i INVENTORY too")
    result = merge.merge(shards, expected, max_age_s=merge.parse_age(args.max_age))
    if not emit_reports(result, specs, options=_output_options(args)):
        return EXIT_UNKNOWN
    return result["summary"]["exit_code"]


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error, which is Nagios CRITICAL: a typo in a cron line or unit
    would page as a critical finding. Usage errors are UNKNOWN (3), like every other failure to run."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_UNKNOWN, f"{self.prog}: error: {message}\n")


def _selection_arguments(p) -> None:
    p.add_argument("--checks", metavar="ID,ID", action="append", default=[],
                   help="only these check ids (repeatable or comma-separated); what they depend on runs as gates")
    p.add_argument("--tags", metavar="T,T", action="append", default=[],
                   help="only checks with one of these tags (their domain: zfs, luks, ...; or a tags: entry)")
    p.add_argument("--severity", choices=("critical", "warning", "info"),
                   help="only checks of at least this severity (warning: warning and critical)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="keystone-checks", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"keystone-checks {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="validate check files (default: the catalog)",
                       description="Validate check files. Files named here are checked against the whole catalog "
                                   "(KEYSTONE_CHECKS_DIR or checks/): a duplicate id is blamed on the named file, "
                                   "depends_on may name catalog checks.")
    p.add_argument("paths", nargs="*", help="check files or directories")
    p.add_argument("--alone", action="store_true",
                   help="judge the named files as a catalog of their own (not against checks/)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("list", help="list checks")
    p.add_argument("--phase", help="one of the phases (an unknown one is an error)")
    p.add_argument("--role", help="controller, installer or deployed")
    p.add_argument("--json", action="store_true")
    _selection_arguments(p)
    p.add_argument("--catalog", help="catalog directory (default: the repository's checks/)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="show one check: what it looks at, expects, and the fix")
    p.add_argument("id")
    p.add_argument("--catalog", "--checks", dest="catalog", help="catalog directory")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("coverage", help="which guide sections have checks (keystone_checks/tools/coverage.py)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the coverage report")
    p.set_defaults(func=cmd_coverage)

    p = sub.add_parser("docs", help="generate docs/checks.md (the catalog) and docs/facts.md (the fact reference); "
                                     "--check: exit 1 when stale")
    p.add_argument("--check", action="store_true", help="do not write; exit 1 if a file differs from what it is generated from")
    p.add_argument("--output", help="the catalog page (default: docs/checks.md; given alone, the fact reference is skipped)")
    p.add_argument("--facts-output", help="the fact reference (default: docs/facts.md)")
    p.add_argument("--catalog", "--checks", dest="catalog", help="catalog directory")
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("diagnose", help="rank the checks whose symptoms explain an error message or pasted log",
                       description="Scores run 0..1: 1.0 = a tool's message (names aside) or a check symptom found "
                                   "whole; 0.8-0.99 = nearly all of a message's words in order; 0.62-0.8 = most of its "
                                   "weighted words; nothing below 0.62 is shown. Exit 0 matches, 1 no confident match, "
                                   "3 no text given / bad eval file.")
    p.add_argument("text", nargs="*", help="the error text; '-' (or nothing, with a pipe) reads stdin")
    p.add_argument("--json", action="store_true", help='print {"matches": [{"id","title","score","guide","fix"}...]}')
    p.add_argument("--limit", type=int, default=5, help="at most this many matches (default 5)")
    p.add_argument("--eval", nargs="*", default=None, metavar="FILE",
                   help="measure top-1/top-3/no-match rates per eval file (default: tests/fixtures/diagnose/"
                        "frozen-test.yaml, dev.yaml, corpus.yaml); unrelated texts must match nothing")
    p.add_argument("--show-frozen", action="store_true",
                   help="with --eval: also list the frozen test set's misses (hidden: it is never tuned on)")
    p.add_argument("-i", "--inventory", help="with --host: confirm the candidate causes on that host (read-only)")
    p.add_argument("--host", help="with -i: the one host to run the candidate checks on")
    p.add_argument("--connect-timeout", type=int, default=10, help="with --host: seconds (default 10)")
    p.add_argument("--catalog", "--checks", dest="catalog", help="catalog directory")
    p.set_defaults(func=cmd_diagnose)

    p = sub.add_parser("run", help="run a phase or playbook through pyinfra's API; exit with the Nagios code",
                       description="Exit codes (Nagios): 0 all pass, 1 a warning check failed, 2 a critical check "
                                   "failed, 3 unknown (errors, unreachable hosts, a critical check that could not "
                                   "run, a report not written, usage errors, interrupted).")
    p.add_argument("target", help="phase (preflight, sweep, ...) or playbook file (playbooks/fix/x.py)")
    p.add_argument("-i", "--inventory", required=True, help="pyinfra inventory file (or @local, host list)")
    p.add_argument("--limit", action="append", default=[], help="host names, globs or groups (repeatable, comma-separated)")
    p.add_argument("--fix", action="store_true", help="queue and run the fixes of failing checks")
    p.add_argument("--dry", action="store_true", help="with --fix: list the fix commands, run nothing "
                                                      "(without --fix: an error, except for a fix playbook)")
    p.add_argument("--data", action="append", default=[], metavar="KEY=VALUE", help="host data for every host")
    p.add_argument("--role", action="append", default=[], metavar="ROLE",
                   help="role of every host (repeatable or comma-separated: --role installer --role controller); "
                        "same as --data role=installer,controller")
    _selection_arguments(p)
    p.add_argument("--waivers", metavar="FILE", help="waivers file: YAML list of {check, hosts, reason, expires}; "
                                                     "a covered failure is reported 'waived' (README: Waivers)")
    p.add_argument("--report", action="append", default=[], metavar="FORMAT[:PATH]",
                   help="console, json, junit, prometheus, nagios, html; no PATH or '-': stdout; "
                        "PATH: a regular file, replaced atomically (repeatable)")
    p.add_argument("--connect-timeout", type=int, default=10, help="seconds (default 10)")
    _add_output_flags(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("merge", help="merge the JSON reports of several controllers (shards) into one fleet report",
                       description="Hosts are concatenated (a host in two shards is an error); with -i, inventory "
                                   "hosts no shard reported are added as unreachable; the summary and the exit code "
                                   "(Nagios, as for run) are recomputed from the merged hosts.")
    p.add_argument("reports", nargs="+", help="the shards' JSON reports (--report json:PATH of run, or --data report=PATH)")
    p.add_argument("-i", "--inventory", help="the whole fleet's inventory: hosts missing from every shard become unreachable")
    p.add_argument("--limit", action="append", default=[], help="with -i: only these hosts/groups are expected")
    p.add_argument("--report", action="append", default=[], metavar="FORMAT[:PATH]",
                   help="console, json, junit, prometheus, nagios, html; no PATH or '-': stdout; "
                        "PATH: a regular file, replaced atomically (repeatable)")
    p.add_argument("--max-age", default="2h", metavar="AGE",
                   help="a host last observed longer ago than this (e.g. 90m, 2h, 1d; default 2h) is reported "
                        "unreachable (stale), not with its old results")
    _add_output_flags(p)
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("lab", help="the QEMU lab: build|up|down|status|ssh|capture (see docs/lab.md)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="lab command and its arguments")
    p.set_defaults(func=cmd_lab)
    return parser


def cmd_lab(args) -> int:
    from ..lab import main as lab_main

    return lab_main(args.rest)


def main(argv: list[str] | None = None) -> int:
    """Run one command. Exit codes: the command's own (Nagios for run/merge), 3 (UNKNOWN) for
    usage errors, errors the tool explains, an internal error (one line, no traceback) and Ctrl-C."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return args.func(args)
    except KeystoneChecksError as exc:
        print(f"keystone-checks: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN  # Nagios "unknown", never "critical"
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("keystone-checks: interrupted", file=sys.stderr)
        return EXIT_UNKNOWN
    except Exception as exc:  # noqa: BLE001 - a bug: one line for the operator, UNKNOWN for monitoring
        where = _where(exc)
        print(f"keystone-checks: internal error: {type(exc).__name__}: {exc}{where} "
              "(a bug: please report it with the command line)", file=sys.stderr)
        return EXIT_UNKNOWN


def _where(exc: BaseException) -> str:
    """`` at file:line`` of the innermost frame, so a bug report needs no traceback."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f" at {Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}" if tb is not None else ""


if __name__ == "__main__":
    sys.exit(main())
