"""``keystone-checks``: the operator's command line around the same engine the playbooks use.

Every expected failure prints one clear message and exits non-zero; no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .catalog import DEFAULT_CHECKS_DIR, validate
from .errors import KeystoneChecksError


def cmd_validate(args) -> int:
    paths = [Path(p) for p in args.paths] or [DEFAULT_CHECKS_DIR]
    checks, problems = validate(paths)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in check files; {len(checks)} file(s) valid", file=sys.stderr)
        return 1
    print(f"ok: {len(checks)} check(s) valid")
    return 0


def _catalog(args):
    checks, problems = validate([Path(args.checks)] if getattr(args, "checks", None) else [DEFAULT_CHECKS_DIR])
    if problems:
        raise KeystoneChecksError("the check catalog is broken; run `keystone-checks validate`:\n" + "\n".join(map(str, problems)))
    return checks


def cmd_list(args) -> int:
    checks = [c for c in _catalog(args)
              if (not args.phase or args.phase in c.phases) and (not args.role or args.role in c.roles)]
    if args.json:
        print(json.dumps([{"id": c.id, "title": c.title, "severity": c.severity, "phases": c.phases,
                           "roles": c.roles, "guide": c.guide} for c in checks], indent=2))
        return 0
    for c in checks:
        print(f"{c.id:<40} {c.severity:<8} {','.join(c.roles):<28} {c.title}")
    print(f"{len(checks)} check(s)")
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
    print(f"  guide:    {check.guide['document']} > {check.guide['section']}" + (f" > {check.guide['cause']}" if check.guide.get("cause") else ""))
    print(f"  why:      {check.why}")
    for name, spec in check.gather.items():
        print(f"  looks at: {name} = {spec['fact']}({json.dumps(spec.get('args', {}))})")
    print(f"  expects:  {json.dumps(check.expect)}")
    if check.depends_on:
        print(f"  after:    {', '.join(check.depends_on)}")
    if check.fix:
        if "manual" in check.fix:
            print(f"  fix (manual): {check.fix['manual']}")
        else:
            print(f"  fix ({check.fix['risk']}): " + " -> ".join(f"{s['op']}({json.dumps(s.get('args', {}))})" for s in check.fix["steps"]))
            if check.fix.get("playbook"):
                print(f"  fix playbook: pyinfra INVENTORY {check.fix['playbook']} --dry   (then without --dry)")
    for item in check.prevention:
        print(f"  prevent:  {item}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keystone-checks", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="validate check files (default: the catalog)")
    p.add_argument("paths", nargs="*", help="check files or directories")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("list", help="list checks")
    p.add_argument("--phase")
    p.add_argument("--role")
    p.add_argument("--json", action="store_true")
    p.add_argument("--checks", help="catalog directory (default: the repository's checks/)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="show one check: what it looks at, expects, and the fix")
    p.add_argument("id")
    p.add_argument("--checks")
    p.set_defaults(func=cmd_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeystoneChecksError as exc:
        print(f"keystone-checks: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
