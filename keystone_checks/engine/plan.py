"""Planning a host's run: which checks apply, which probes they need (deduplicated), in what order.

Pure functions of (catalog, phase, host data): no pyinfra state, so the CLI, the playbooks and the
benchmark share them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import KeystoneChecksError
from ..facts import FACTS
from ..facts.batch import Probe
from . import hostdata, templating
from .catalog import Check, load_catalog

PHASES = ("preflight", "configuration", "network", "deployment", "boot", "zfs", "performance", "next-boot",
          "before-reboot", "recovery", "sweep")


@dataclass
class HostPlan:
    """What one host will do: applicable checks, role-skipped checks, probes, and per-check problems."""

    checks: list[Check] = field(default_factory=list)
    skipped_by_role: list[Check] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    # check id -> {gather name: probe index}
    probe_index: dict[str, dict[str, int]] = field(default_factory=dict)
    # check id -> message (template could not be rendered for this host)
    problems: dict[str, str] = field(default_factory=dict)
    # check id -> why it does not apply (host data it requires is empty, e.g. pool "" = no ZFS pool)
    not_applicable: dict[str, str] = field(default_factory=dict)


def checks_for_phase(catalog: list[Check], phase: str) -> list[Check]:
    """The phase's checks plus, transitively, every check they depend on (from any phase):
    a dependency outside the phase must still gate its dependents, never be silently ignored."""
    return with_dependencies(catalog, [c.id for c in catalog if phase in c.phases], f"phase {phase}")


def with_dependencies(catalog: list[Check], check_ids: list[str], what: str) -> list[Check]:
    """``check_ids`` plus, transitively, every check they depend on, dependencies first (else catalog
    order). The one dependency closure of a phase, a fix playbook and a diagnosis. An id the catalog
    does not have is an error naming ``what`` asked for it (a playbook, a phase)."""
    by_id = {c.id: c for c in catalog}
    unknown = [i for i in check_ids if i not in by_id]
    if unknown:
        raise KeystoneChecksError(f"{what}: unknown check id(s) {unknown}")
    wanted: set[str] = set()
    stack = list(check_ids)
    while stack:
        current = stack.pop()
        if current in wanted:
            continue
        wanted.add(current)
        stack.extend(dep for dep in by_id[current].depends_on if dep in by_id)
    return order_by_dependencies([c for c in catalog if c.id in wanted])


def order_by_dependencies(checks: list[Check]) -> list[Check]:
    """Dependencies first, otherwise file order (the catalog validator already refused cycles)."""
    by_id = {c.id: c for c in checks}
    ordered: list[Check] = []
    seen: set[str] = set()

    def visit(check: Check) -> None:
        if check.id in seen:
            return
        seen.add(check.id)
        for dep in check.depends_on:
            if dep in by_id:
                visit(by_id[dep])
        ordered.append(check)

    for check in checks:
        visit(check)
    return ordered


def data_alternatives(item: str | list[str]) -> list[str]:
    """A ``requires_data`` entry: one host data key, or a list of keys any one of which will do."""
    return [item] if isinstance(item, str) else list(item)


def data_names(item: str | list[str]) -> str:
    """``'pool'``, or ``'luks_passphrase_file' or 'luks_passphrase_env'`` for a list entry."""
    return " or ".join(repr(k) for k in data_alternatives(item))


def probe_key(fact_name: str, args: dict[str, Any]) -> str:
    return fact_name + json.dumps(args, sort_keys=True, default=str)


def plan_host(checks: list[Check], roles: list[str], context: dict[str, Any]) -> HostPlan:
    plan = HostPlan()
    keys: dict[str, int] = {}
    for check in checks:
        if not set(check.roles) & set(roles):
            plan.skipped_by_role.append(check)
            continue
        empty = [item for item in check.requires_data if not any(context.get(key) not in (None, "", [])
                                                                  for key in data_alternatives(item))]
        if empty:
            plan.not_applicable[check.id] = (f"not applicable: host data {', '.join(data_names(k) for k in empty)} "
                                             "is empty for this host")
            continue
        plan.checks.append(check)
        indexes: dict[str, int] = {}
        try:
            for gather_name, spec in check.gather.items():
                args = templating.render(spec.args, context)
                fact = FACTS[spec.fact]()
                key = probe_key(spec.fact, args)
                if key not in keys:
                    keys[key] = len(plan.probes)
                    plan.probes.append(Probe(key=key, command=str(fact.command(**args)),
                                             requires=fact.requires, timeout=fact.timeout,
                                             writes_files=fact.writes_files, secret=fact.reads_secret))
                indexes[gather_name] = keys[key]
        except templating.TemplateProblem as exc:
            plan.problems[check.id] = f"host data problem: {exc}"
            continue
        plan.probe_index[check.id] = indexes
    return plan


def host_probes(phase: str, role: str, host_data: dict[str, Any], catalog: list[Check] | None = None) -> list[tuple[str, str]]:
    """(probe key, shell command) for every probe a phase needs on a host of ``role``.

    Used by the benchmark to run the same probes through other tools.
    """
    checks = checks_for_phase(catalog if catalog is not None else load_catalog(), phase)
    context = hostdata.resolve("bench", {"role": role, **host_data})
    plan = plan_host(checks, [role], context)
    return [(p.key, p.command) for p in plan.probes]
