"""What every report shows for a failing check: the fix (summary, risk), the commands that run it
(dry first) and a link to the guide section, whether or not this run was asked to fix.

A scheduled sweep is check-only: its results carry no queued fix (``fix`` is null), yet the operator
reading the report at 3 a.m. needs the way out. ``describe_fix`` reads it from the catalog when the
result is made; ``commands`` adds the command lines once the phase and host are known (report.build).
Nothing here comes from a host: the commands are built from the phase, the playbook path and the host
name, each shell-quoted; no secret (a passphrase is never host data) can reach them.

Example (a report's failing result)::

    "remedy": {"summary": "Load the encryption keys", "risk": "safe", "playbook": "playbooks/fix/load-keys.py",
               "dry": ["keystone-checks run playbooks/fix/load-keys.py -i INVENTORY --limit web-1 --fix --dry",
                       "pyinfra INVENTORY playbooks/fix/load-keys.py --limit web-1 --dry"],
               "apply": [...the same without --dry...]}
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

GUIDES_DIR = Path(__file__).resolve().parents[1] / "data" / "guides"
INVENTORY = "INVENTORY"  # placeholder where the run did not say which inventory it read (a merged fleet report)
NO_FIX = "no automated fix: see the guide section"


def describe_fix(check: Any) -> dict[str, Any]:
    """The catalog's fix of ``check``, as reports show it: summary, risk, playbook.

    risk: ``safe`` / ``disruptive`` / ``destructive`` (automated steps), ``manual`` (the operator
    does it by hand: summary is the text), ``none`` (nothing automated nor written: see the guide).
    """
    from .catalog import describe_fix as catalog_fix  # the one description of a fix (cli, docs, diagnose too)

    described = catalog_fix(check)
    if described.kind == "manual":
        return {"summary": described.text, "risk": "manual", "playbook": None}
    if described.kind == "automated":
        return {"summary": described.text or "automated fix (see the guide section)",
                "risk": described.risk or "safe", "playbook": described.playbook}
    return {"summary": NO_FIX, "risk": "none", "playbook": None}


def with_commands(remedy: dict[str, Any], phase: str, host: str, inventory: str | None = None) -> dict[str, Any]:
    """``remedy`` plus ``dry`` and ``apply``: the ``keystone-checks run`` and ``pyinfra`` command
    lines that run this fix on ``host`` (empty for manual or no fix). The fix playbook when the check
    names one (it runs just that fix), else the phase's playbook with fixing on."""
    out = {k: v for k, v in remedy.items() if k not in ("dry", "apply")}
    if out.get("risk") not in ("safe", "disruptive", "destructive"):
        return {**out, "dry": [], "apply": []}
    playbook = out.get("playbook")
    if not playbook:
        playbook = f"playbooks/fix/{phase[4:]}.py" if phase.startswith("fix-") else f"playbooks/{phase}.py"
        target = playbook if phase.startswith("fix-") else phase
    else:
        target = playbook
    q = shlex.quote
    inventory = q(inventory) if inventory else INVENTORY
    limit = f" --limit {q(host)}"
    consent = ""
    if out["risk"] == "destructive":  # fixing.refusal_for: the run's opt-in and this host's disk, named
        consent = f" --data allow_destructive=true --data {q(f'destructive_device={host}:<disk>')}"
    fix_data = "" if playbook.startswith("playbooks/fix/") else " --data fix=true"
    kc = f"keystone-checks run {q(target)} -i {inventory}{limit} --fix"
    py = f"pyinfra {inventory} {q(playbook)}{limit}"
    return {**out,
            "dry": [f"{kc} --dry", f"{py} --dry{fix_data}"],
            "apply": [f"{kc}{consent}", f"pyinfra -y {inventory} {q(playbook)}{limit}{fix_data}{consent}"]}


def guide_anchor(section: str) -> str:
    """The GitHub-style anchor of a Markdown heading (what the guides' own links use)."""
    text = re.sub(r"[^\w\- ]", "", section.strip().lower())
    return text.replace(" ", "-")


def guide_link(guide: dict[str, Any] | None) -> str | None:
    """A file:// link to the section in the guide copy shipped with this installation, or None."""
    if not guide or not guide.get("document"):
        return None
    name = Path(str(guide["document"])).name  # a name, never a path out of the guides directory
    path = GUIDES_DIR / name
    if not path.is_file():
        return None
    anchor = guide_anchor(str(guide.get("section", "")))
    return path.as_uri() + (f"#{anchor}" if anchor else "")


def fix_sections(r: dict[str, Any]) -> list[tuple[str, str, str, dict[str, list[str]]]]:
    """What a report shows of a result's fix, in order, for every writer to render its own way:
    ``(kind, label, text, commands)``. Kinds: ``ran`` (this run's fix commands, queued or run),
    ``error`` (the failing command's own text), ``refused``, ``remedy`` (the catalog's fix; commands
    ``dry`` then ``apply``), ``manual`` (a manual fix this run carried, when there is no remedy)."""
    out: list[tuple[str, str, str, dict[str, list[str]]]] = []
    fix = r.get("fix") or {}
    if fix.get("commands") and r.get("outcome") in ("would-fix", "fix-failed"):
        out.append(("ran", "queued" if r["outcome"] == "would-fix" else "ran", "", {"ran": list(fix["commands"])}))
    if fix.get("error"):
        out.append(("error", "fix error", str(fix["error"]), {}))
    if fix.get("refused"):
        out.append(("refused", "fix refused", str(fix["refused"]), {}))
    remedy = r.get("remedy")
    if remedy:
        out.append(("remedy", f"fix ({remedy['risk']})", remedy["summary"],
                    {"dry": list(remedy.get("dry", [])), "apply": list(remedy.get("apply", []))}))
    elif fix.get("manual"):
        out.append(("manual", "fix (manual)", str(fix["manual"]), {}))
    return out


def text_lines(r: dict[str, Any]) -> list[str]:
    """A result's fix as plain text lines (JUnit, e-mail, any text format): :func:`fix_sections`,
    then the guide section with its link."""
    out: list[str] = []
    for kind, label, text, commands in fix_sections(r):
        if kind == "ran":
            out += [f"{label}: $ {c}" for c in commands["ran"]]
            continue
        out.append(f"{label}: {text}")
        out += [f"dry run first: $ {c}" for c in commands.get("dry", [])]
        out += [f"then: $ {c}" for c in commands.get("apply", [])]
    guide = r.get("guide") or {}
    if guide.get("section"):
        link = guide_link(guide)
        out.append(f"guide: {guide.get('document')} > {guide['section']}" + (f" ({link})" if link else ""))
    return out
