"""systemd: failed units (with their last journal lines), system state, service state."""

from __future__ import annotations

from ..errors import UnparseableOutput
from .base import KeystoneFact, shell_quote

JOURNAL_LINES = 20


class FailedUnits(KeystoneFact):
    """Units in the failed state, each with the last journal lines (the guide's diagnosis).

    Example: ``[{"unit": "nginx.service", "load": "loaded", "active": "failed", "sub": "failed",
    "description": "Nginx", "journal": ["... nginx[812]: bind() failed ..."]}]``
    """

    requires = "systemctl"

    def command(self):
        return (
            "systemctl list-units --failed --no-legend --plain --full --no-pager || exit $?; "
            "for u in $(systemctl list-units --failed --no-legend --plain --full --no-pager | awk '{print $1}'); do "
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

    Arguments:
        units: space-separated unit names, e.g. ``"sshd ssh"``

    Example: ``{"states": {"sshd": "active", "ssh": "inactive"}, "active": ["sshd"], "any_active": true}``
    """

    requires = "systemctl"
    ok_exit_codes = frozenset({0, 3, 4})

    def command(self, units):
        names = [u for u in str(units).split() if u]
        quoted = " ".join(shell_quote(u) for u in names)
        return f"for u in {quoted}; do printf '%s ' \"$u\"; systemctl is-active \"$u\" 2>&1 | head -n 1; done; exit 0"

    def process(self, output):
        states = {}
        for line in output:
            parts = line.split(None, 1)
            if not parts:
                continue
            if len(parts) != 2:
                raise UnparseableOutput(f"systemctl is-active: unexpected line {line!r}")
            states[parts[0]] = parts[1].strip()
        if any(s.startswith("System has not been booted") or s.startswith("Failed to connect") for s in states.values()):
            from ..errors import ProbeFailed

            raise ProbeFailed("systemd is not running on this host (not booted with systemd)")
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
            from ..errors import ProbeFailed

            raise ProbeFailed("systemd is not running as PID 1 here (is-system-running: offline)")
        if words[-1] in SYSTEM_STATES:
            return {"state": words[-1]}
        raise UnparseableOutput(f"systemctl is-system-running: unknown state {words[-1]!r}")
