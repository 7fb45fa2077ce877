"""systemd: failed units (with their last journal lines), system state, service state."""

from __future__ import annotations

import re

from ..errors import ProbeFailed, UnparseableOutput
from .base import KeystoneFact, shell_quote

JOURNAL_LINES = 20
_UNIT_STATE = re.compile(r"[a-z][a-z-]*")  # active, inactive, failed, activating, unknown, ...


class FailedUnits(KeystoneFact):
    """Units in the failed state, each with the last journal lines (the guide's diagnosis).

    Example: ``[{"unit": "nginx.service", "load": "loaded", "active": "failed", "sub": "failed",
    "description": "Nginx", "journal": ["... nginx[812]: bind() failed ..."]}]``
    """

    requires = "systemctl"

    def command(self):
        # One systemctl, its answer kept for the journal loop; nothing more runs when no unit failed.
        return (
            "kc_f=$(systemctl list-units --failed --no-legend --plain --full --no-pager) || exit $?; "
            "[ -n \"$kc_f\" ] || exit 0; printf '%s\\n' \"$kc_f\"; "
            "for u in $(printf '%s\\n' \"$kc_f\" | awk '{print $1}'); do "
            f"echo \"--journal $u\"; journalctl -u \"$u\" -n {JOURNAL_LINES} --no-pager -o short-iso 2>&1 | tail -n {JOURNAL_LINES}; done"
        )

    def process(self, output):
        units: list[dict] = []
        by_name: dict[str, dict] = {}
        current = None
        for line in output:
            if line.startswith("--journal "):
                current = by_name.get(line.split(" ", 1)[1].strip())
                continue
            if current is not None:
                current["journal"].append(line)
                continue
            if not line.strip():
                continue
            parts = line.lstrip("● ").split(None, 4)
            if len(parts) < 4:
                raise UnparseableOutput(f"systemctl --failed: unexpected line {line!r}")
            unit = {"unit": parts[0], "load": parts[1], "active": parts[2], "sub": parts[3],
                    "description": parts[4] if len(parts) > 4 else "", "journal": []}
            units.append(unit)
            by_name[unit["unit"]] = unit
        return units

    def parse(self, result):
        self.raise_for_exit(result)
        return self.process(result.stdout)

    @staticmethod
    def default():
        return []


class ServiceActive(KeystoneFact):
    """``systemctl is-active`` for one or more unit names (the same service is ``sshd`` on NixOS
    and ``ssh`` on Debian: pass both). Exit 3/4 for inactive/unknown units is an answer.

    One ``systemctl is-active UNIT...`` prints one state per unit, in order, after a ``units``
    line naming them; a state count that does not match the units is unparseable, never a pass.
    Not booted with systemd (its message on stderr) is an error.

    Arguments:
        units: space-separated unit names, e.g. ``"sshd ssh"``

    Example: ``{"states": {"sshd": "active", "ssh": "inactive"}, "active": ["sshd"], "any_active": true}``
    """

    requires = "systemctl"
    ok_exit_codes = frozenset({0, 3, 4})

    def command(self, units):
        names = [u for u in str(units).split() if u]
        header = f"printf '%s\\n' {shell_quote(' '.join(['units', *names]))}"
        if not names:
            return header
        # stderr stays apart: merged, "not booted" messages could pass for states, one per unit.
        return f"{header}; systemctl is-active -- {' '.join(shell_quote(u) for u in names)}"

    def parse(self, result):
        errors = " ".join(result.stderr)
        if "not been booted with systemd" in errors or "Failed to connect to bus" in errors:
            raise ProbeFailed("systemd is not running on this host (not booted with systemd)")
        self.raise_for_exit(result)
        return self.process(result.stdout)

    def process(self, output):
        lines = [line.strip() for line in output if line.strip()]
        if not lines or lines[0].split()[0] != "units":
            raise UnparseableOutput("systemctl is-active: expected a 'units ...' line first")
        units, found = lines[0].split()[1:], lines[1:]
        if len(found) != len(units):
            raise UnparseableOutput(f"systemctl is-active: {len(units)} unit(s) {units} but "
                                    f"{len(found)} state line(s) {found[:4]!r}")
        bad = [s for s in found if not _UNIT_STATE.fullmatch(s)]
        if bad:
            raise UnparseableOutput(f"systemctl is-active: not a unit state: {bad[0][:120]!r}")
        states = dict(zip(units, found))
        active = [u for u, s in states.items() if s in ("active", "reloading", "activating")]
        return {"states": states, "active": active, "any_active": bool(active)}


SYSTEM_STATES = ("initializing", "starting", "running", "degraded", "maintenance", "stopping", "offline", "unknown")


class SystemState(KeystoneFact):
    """``systemctl is-system-running``: has boot finished? It exits non-zero for every state
    but ``running``; the printed state is the answer.

    Example: ``{"state": "starting"}``
    """

    requires = "systemctl"
    ok_exit_codes = frozenset(range(0, 126))

    def command(self):
        return "systemctl is-system-running 2>&1"

    def process(self, output):
        words = [line.strip() for line in output if line.strip()]
        if not words:
            raise UnparseableOutput("systemctl is-system-running printed nothing")
        if words[-1] == "offline" or any("not been booted with systemd" in w for w in words):
            raise ProbeFailed("systemd is not running as PID 1 here (is-system-running: offline)")
        if words[-1] in SYSTEM_STATES:
            return {"state": words[-1]}
        raise UnparseableOutput(f"systemctl is-system-running: unknown state {words[-1]!r}")
