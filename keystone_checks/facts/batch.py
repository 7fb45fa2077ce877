"""One remote command per host: the engine's answer to pyinfra's three round trips per fact.

Every fact a playbook needs on a host is rendered to its shell command and wrapped in a section
with a per-run random marker, its own timeout, its stderr captured to a temporary file and its
exit code printed; the sections run concurrently and are printed in order. The whole script always exits 0, so a failing probe never marks the pyinfra
host failed; each fact later parses only its own section.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from pyinfra.api import FactBase

from .base import EXIT_NOT_FOUND, ProbeOutput, shell_quote

STDERR_LIMIT = 8192  # bytes of stderr kept per probe: enough for an error, bounded for huge logs


@dataclass(frozen=True)
class Probe:
    key: str  # unique within a batch, e.g. "zfs.PoolStatus{\"pool\":\"rpool\"}"
    command: str
    requires: str | None = None
    timeout: int = 20


def render_batch(probes: list[Probe], marker: str) -> str:
    """The shell script running every probe, each in its own delimited section.

    Probes run concurrently (each in a background subshell writing its whole section to its own
    file), so a host answers in the time of its slowest probe, not the sum of all; one ``cat``
    prints the sections in probe order. Per probe: ``timeout`` + ``sh -c`` and no other process
    (stderr is only read when there is some).
    """
    lines = [
        "export LC_ALL=C",
        'kc_t=$(mktemp -d 2>/dev/null) || { kc_t=/tmp/kc.$$; mkdir -p "$kc_t"; }',
        'if command -v timeout >/dev/null 2>&1; then kc_to="timeout -k 2"; else kc_to=""; fi',
    ]
    for index, probe in enumerate(probes):
        timed = f'if [ -n "$kc_to" ]; then $kc_to {probe.timeout} sh -c {shell_quote(probe.command)}; else sh -c {shell_quote(probe.command)}; fi'
        if probe.requires:
            body = (
                f"if command -v {shell_quote(probe.requires)} >/dev/null 2>&1; then {timed}; "
                f"else echo {shell_quote(probe.requires + ': command not found')} >&2; (exit {EXIT_NOT_FOUND}); fi"
            )
        else:
            body = timed
        lines.append(
            f"( echo '{marker}:{index}:OUT'; {{ {body} ; }} </dev/null 2>\"$kc_t/e{index}\"; kc_rc=$?; "
            f"echo; echo '{marker}:{index}:ERR'; "
            f"if [ -s \"$kc_t/e{index}\" ]; then head -c {STDERR_LIMIT} \"$kc_t/e{index}\"; echo; fi; "
            f"echo \"{marker}:{index}:RC:$kc_rc\" ) >\"$kc_t/s{index}\" &"
        )
    lines.append("wait")
    if probes:
        lines.append("cat " + " ".join(f'"$kc_t/s{i}"' for i in range(len(probes))))
    lines.append('rm -rf "$kc_t"')
    lines.append("exit 0")
    return "\n".join(lines)


def split_batch(lines: list[str], marker: str, count: int) -> list[ProbeOutput]:
    """Cut the batch's stdout back into one ProbeOutput per probe.

    A probe whose section is missing (the batch was cut short) gets exit code -1 and says so.
    """
    results: list[ProbeOutput | None] = [None] * count
    index = -1
    part = ""
    out: list[str] = []
    err: list[str] = []
    prefix = marker + ":"
    for line in lines:
        if line.startswith(prefix):
            fields = line[len(prefix):].split(":")
            if len(fields) >= 2 and fields[0].isdigit():
                index, part = int(fields[0]), fields[1]
                if part == "OUT":
                    out, err = [], []
                elif part == "RC" and 0 <= index < count:
                    rc = int(fields[2]) if len(fields) > 2 and fields[2].lstrip("-").isdigit() else -1
                    results[index] = ProbeOutput(rc, _trim(out), _trim(err))
                    index = -1
                continue
        if index < 0:
            continue
        (out if part == "OUT" else err).append(line)
    return [r if r is not None else ProbeOutput(-1, [], ["probe did not complete (batch output cut short)"]) for r in results]


def _trim(lines: list[str]) -> list[str]:
    # The section terminator `echo` adds one empty line when the output ended with a newline.
    if lines and lines[-1] == "":
        return lines[:-1]
    return lines


class ProbeBatch(FactBase):
    """All probes of a playbook run on one host, in one remote command.

    Arguments:
        probes: tuple of ``Probe``
        marker: random section marker (the engine passes a fresh one per run)

    Returns a list of ``ProbeOutput`` in probe order.
    """

    def command(self, probes, marker):
        return render_batch(list(probes), marker)

    def process(self, output):
        return output  # raw lines: split_batch() needs the probe count the engine holds

    @staticmethod
    def default():
        return []


def new_marker() -> str:
    return "@@KC-" + secrets.token_hex(6)
