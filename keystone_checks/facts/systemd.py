"""systemd: failed units (with their last journal lines), system state, service state."""

from __future__ import annotations

from ..errors import UnparseableOutput
from .base import KeystoneFact

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
