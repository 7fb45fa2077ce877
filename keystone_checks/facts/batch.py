"""One remote command per host: the engine's answer to pyinfra's three round trips per fact.

Every fact a playbook needs on a host is rendered to its shell command and wrapped in a section
with a per-run random marker, its own timeout, its stderr captured to a temporary file and its
exit code printed; the sections run concurrently and are printed in order. The whole script always
exits 0, so a failing probe never marks the pyinfra host failed; each fact later parses only its
own section.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from pyinfra.api import FactBase

from .base import EXIT_NOT_FOUND, EXIT_TIMEOUT, ProbeOutput, shell_quote

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
    prints the sections in probe order.

    A probe costs two forks and no exec beyond its own commands: host CPU is what a fleet sweep
    spends most of (docs/benchmarks.md), so there is no ``timeout`` + ``sh -c`` per probe. Instead
    one watchdog per distinct timeout sleeps, then kills what is still running of its probes (the
    whole process tree, found with ``pgrep -P``) and marks them timed out (exit code 124, as GNU
    ``timeout`` would). A probe stuck in uninterruptible sleep (D state, e.g. on a suspended pool)
    cannot be killed by anyone; the batch then waits for it, as ``timeout`` would.
    """
    q = shell_quote
    lines = [
        "export LC_ALL=C",
        'kc_t=$(mktemp -d 2>/dev/null) || { kc_t=/tmp/kc.$$; mkdir -p "$kc_t"; }',
        # stop first so the tree cannot grow while it is walked
        'kc_tree() { kill -STOP "$1" 2>/dev/null; for kc_c in $(pgrep -P "$1" 2>/dev/null); do kc_tree "$kc_c"; done; '
        'kill -KILL "$1" 2>/dev/null; }',
    ]
    for index, probe in enumerate(probes):
        guard = ""
        if probe.requires:
            guard = (f"command -v {q(probe.requires)} >/dev/null 2>&1 || "
                     f"{{ echo {q(probe.requires + ': command not found')} >&2; exit {EXIT_NOT_FOUND}; }}\n")
        # The command sits on lines of its own inside a subshell: its `exit` ends only itself, and a
        # trailing comment or here-document in it cannot swallow the section's closing lines.
        lines.append(
            f"( echo '{marker}:{index}:OUT'\n"
            f"(\n{guard}{probe.command}\n) </dev/null 2>\"$kc_t/e{index}\" &\n"
            f"echo $! >\"$kc_t/p{index}\"; wait $!; kc_rc=$?; : >\"$kc_t/p{index}\"\n"
            f"[ -f \"$kc_t/x{index}\" ] && kc_rc={EXIT_TIMEOUT}\n"
            f"echo; echo '{marker}:{index}:ERR'\n"
            f"if [ -s \"$kc_t/e{index}\" ]; then head -c {STDERR_LIMIT} \"$kc_t/e{index}\"; echo; fi\n"
            f"echo \"{marker}:{index}:RC:$kc_rc\" ) >\"$kc_t/s{index}\" &\n"
            f"kc_s{index}=$!"
        )
    groups: dict[int, list[int]] = {}
    for index, probe in enumerate(probes):
        groups.setdefault(probe.timeout, []).append(index)
    for seconds, indexes in sorted(groups.items()):
        # `p<i>` holds the running probe's pid and is emptied when it ends; `x<i>` says "timed out".
        lines.append(
            f"( trap 'kill $! 2>/dev/null; exit 0' TERM; sleep {int(seconds)} & wait $!\n"
            f"for kc_i in {' '.join(map(str, indexes))}; do read kc_p <\"$kc_t/p$kc_i\" || continue; "
            f"[ -n \"$kc_p\" ] || continue; : >\"$kc_t/x$kc_i\"; kc_tree \"$kc_p\"; done ) >/dev/null 2>&1 &\n"
            f"kc_w{seconds}=$!"
        )
    if probes:
        lines.append("wait " + " ".join(f"$kc_s{i}" for i in range(len(probes))))
        lines.append("kill " + " ".join(f"$kc_w{s}" for s in sorted(groups)) + " 2>/dev/null")
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
