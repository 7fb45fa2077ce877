"""``keystone-checks diagnose -i INVENTORY --host H TEXT``: confirm the candidate causes on the host.

The text ranks candidate checks (keystone_checks/tools/diagnose.py); this runs exactly those checks (and
the checks they depend on) on the one host, with the engine of ``keystone-checks run``
(the api front-end's session: load, --limit, connect, the engine's check_host: one batched gather), and
re-ranks the causes by what the host shows:

* **confirmed**: the check fails on the host: this is (one of) the cause(s); its fix is printed with
  "dry run first";
* **not confirmed**: the check could not be evaluated there (error, skipped, not for the host's role);
* **ruled out**: the check passes on the host.

Nothing is ever changed on the host: fixes are not queued (``fix`` off) and no operation is run.

Example::

    keystone-checks diagnose -i inventory.py --host installer1 "cannot export 'rpool': pool is busy"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import KeystoneChecksError

_RANK = {"confirmed": 0, "not confirmed": 1, "ruled out": 2}


@dataclass
class Cause:
    match: Any                  # diagnose.Match
    verdict: str                # confirmed / not confirmed / ruled out
    outcome: str                # the check's outcome on the host (or "not run")
    detail: str                 # the check's message on the host

    def to_dict(self) -> dict[str, Any]:
        return {**self.match.to_dict(), "verdict": self.verdict, "host_outcome": self.outcome,
                "host_message": self.detail}


def _verdict(outcome: str) -> str:
    if outcome in ("fail", "would-fix", "fix-failed"):
        return "confirmed"
    if outcome in ("pass", "fixed"):
        return "ruled out"
    return "not confirmed"


def run_checks(inventory_path: str, host_name: str, check_ids: list[str], catalog: list,
               connect_timeout: int = 10) -> tuple[str, dict[str, Any]]:
    """Run ``check_ids`` (plus their dependencies) on one host: (status, {check id: CheckResult}).

    ``status`` is "ok", or "unreachable: REASON" / "error: REASON" when no check could run.
    """
    from ..frontends import api as apirun

    apirun.patch()
    from ..engine.plan import with_dependencies

    checks = with_dependencies(catalog, check_ids, "diagnose")
    session = apirun.open_session(inventory_path, [host_name], connect_timeout=connect_timeout)
    if len(session.hosts) != 1:
        raise KeystoneChecksError(f"--host {host_name} names {len(session.hosts)} hosts in {inventory_path}; name one host")
    (host,) = session.hosts
    try:
        reports = apirun.connect_and_check(session, checks, force_fix=False)
        if not host.connected:
            failure = apirun.failure_of(session, host)
            return f"unreachable: {failure.kind}: {failure.reason}", {}
    finally:
        apirun.close(session)
    host_report = reports[host.name]
    if host_report.status == "error":
        return f"error: {host_report.error}", {}
    return "ok", {r.check: r for r in host_report.results}


def rank_on_host(matches: list, results: dict[str, Any]) -> list[Cause]:
    """Candidate causes re-ranked by what the host showed (the text's order within each verdict)."""
    causes = []
    for m in matches:
        result = results.get(m.check.id)
        outcome = str(result.outcome) if result is not None else "not run"
        if result is not None and result.role_skipped:
            outcome = "not for this host's role"
        causes.append(Cause(m, _verdict(outcome), outcome, " ".join((result.message if result else "").split())))
    order = {id(c): n for n, c in enumerate(causes)}
    return sorted(causes, key=lambda c: (_RANK[c.verdict], order[id(c)]))


def render(causes: list[Cause], host: str) -> str:
    from .diagnose import fix_of

    lines = []
    for cause in causes:
        check = cause.match.check
        if cause.verdict == "confirmed":
            fix = fix_of(check)
            how = (f"$ {fix['command']}" if "command" in fix else f"(manual) {fix['manual']}")
            lines.append(f"confirmed on {host}: {check.id} ({cause.outcome}: {cause.detail})")
            lines.append(f"   fix: {how}   (dry run first)")
        else:
            lines.append(f"{cause.verdict} on {host}: {check.id} ({cause.outcome}"
                         + (f": {cause.detail}" if cause.detail else "") + ")")
        lines.append(f"   why the text points here: {cause.match.why}")
    return "\n".join(lines) + "\n"
