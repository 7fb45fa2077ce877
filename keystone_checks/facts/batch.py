"""One remote command per host: the engine's answer to pyinfra's three round trips per fact.

Every fact a playbook needs on a host is rendered to its shell command and wrapped in a section
with a per-run random marker, its own timeout, its stdout bounded, its stderr captured to a private
temporary file and its exit code printed; the sections run concurrently and are printed in order,
base64-encoded. The whole script always exits 0, so a failing probe never marks the pyinfra host
failed; each fact later parses only its own section.

Bytes from a host are data, never trusted to be text: pyinfra (paramiko's ``ChannelFile.readline``
and the @local connector alike) decodes every output line as strict UTF-8 and a single ``\\xff``
byte raised ``UnicodeDecodeError`` in its reader greenlet, losing the rest of the output. So the
batch's stdout is one base64 stream (short ASCII lines whatever the probes print) and the
engine decodes each probe's lines itself, with ``errors="replace"`` (an undecodable byte becomes
U+FFFD: a value read from a host is text for a report, never bytes to be written back).
"""

from __future__ import annotations

import binascii
import secrets
from dataclasses import dataclass

from pyinfra.api import FactBase

from .base import EXIT_NOT_FOUND, EXIT_TIMEOUT, ProbeOutput, shell_quote

STDERR_LIMIT = 8192  # bytes of stderr kept per probe: enough for an error, bounded for huge logs
STDOUT_LIMIT = 1024 * 1024  # bytes of stdout per probe; more is an error ("output larger than ...")
KILL_GRACE = 2  # seconds a killed probe gets to end before its section is written without it

NO_TEMP_DIR = ("cannot create a private temp dir on the host (mktemp -d failed): no probe was run, "
               "nothing was written (check that /tmp or $TMPDIR is writable and not full)")
NO_BASE64 = "the host has no base64 command (coreutils/busybox): no probe was run"


@dataclass(frozen=True)
class Probe:
    key: str  # unique within a batch, e.g. "zfs.PoolStatus{\"pool\":\"rpool\"}"
    command: str
    requires: str | None = None
    timeout: int = 20


def render_batch(probes: list[Probe], marker: str) -> str:
    """The shell script running every probe, each in its own delimited section.

    Probes run concurrently (each in a background subshell writing its whole section to its own
    file in a private ``mktemp -d`` directory), so a host answers in the time of its slowest probe,
    not the sum of all; one ``cat | base64`` prints the sections in probe order. No ``mktemp``
    (or no base64): one line saying so and nothing run, never a predictable path in /tmp.

    A probe's stdout goes through ``head -c`` (one byte over :data:`STDOUT_LIMIT`, so the engine
    can tell "too large" from "exactly the limit"); it records its own pid (``/proc/self/stat``,
    read by a builtin) and its exit status (an EXIT trap). Host CPU is what a fleet sweep spends
    most of (docs/benchmarks.md): a probe costs three forks and one exec (``head``) beyond its own
    commands, the batch one ``base64``; no ``timeout`` + ``sh -c`` per probe. One watchdog per distinct timeout
    sleeps, then kills what is still running of its probes (the whole process tree, found with
    ``pgrep -P``) and marks them timed out (exit code 124, as GNU ``timeout`` would). A probe that
    does not end within :data:`KILL_GRACE` seconds of that (uninterruptible sleep, D state, e.g.
    ``zpool status`` on a suspended pool; or a child that escaped and holds its output open) is
    not waited for: the watchdog writes its section (timed out, "could not be killed") and kills
    the section's shell, so the batch still ends and reports every other probe.
    """
    q = shell_quote
    lines = [
        "export LC_ALL=C",
        "umask 077",
        # The batch's own stderr would reach pyinfra's strict UTF-8 decoder: probes' stderr is
        # captured per probe, anything else is dropped.
        "exec 2>/dev/null",
        f"command -v base64 >/dev/null || {{ echo '{marker}:NOBASE64'; exit 0; }}",
        # Fail closed: a predictable fallback path would let a local user plant a symlink that root
        # then writes through.
        f'kc_t=$(mktemp -d) && [ -d "$kc_t" ] || {{ echo \'{marker}:NOTMP\'; exit 0; }}',
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
        # `p<i>` holds the running probe's pid and is emptied when its output is complete, `r<i>`
        # its exit status, `x<i>` says "timed out".
        lines.append(
            f"( echo '{marker}:{index}:OUT'\n"
            # The trap's path is expanded now: a probe may use any variable name, kc_t included.
            f"( trap \"echo \\$? >'$kc_t/r{index}'\" EXIT; read kc_p kc_x <\"/proc/self/stat\" && echo \"$kc_p\" >\"$kc_t/p{index}\"\n"
            f"{guard}{probe.command}\n"
            f") </dev/null 2>\"$kc_t/e{index}\" | head -c {STDOUT_LIMIT + 1}\n"
            f": >\"$kc_t/p{index}\"; kc_rc=-1; read kc_rc <\"$kc_t/r{index}\"\n"
            f"[ -f \"$kc_t/x{index}\" ] && kc_rc={EXIT_TIMEOUT}\n"
            f"echo; echo '{marker}:{index}:ERR'\n"
            f"if [ -s \"$kc_t/e{index}\" ]; then head -c {STDERR_LIMIT} \"$kc_t/e{index}\"; echo; fi\n"
            f"echo \"{marker}:{index}:RC:$kc_rc\" ) >\"$kc_t/s{index}\" &\n"
            f"kc_s{index}=$!"
        )
    groups: dict[int, list[int]] = {}
    for index, probe in enumerate(probes):
        groups.setdefault(probe.timeout, []).append(index)
    unkillable = f"probe did not end within {KILL_GRACE}s of being killed (uninterruptible?): not waited for"
    for seconds, indexes in sorted(groups.items()):
        members = " ".join(map(str, indexes))
        lines.append(
            f"( trap 'kill $! 2>/dev/null; exit 0' TERM; sleep {int(seconds)} & wait $!\n"
            f"kc_k=; for kc_i in {members}; do read kc_p <\"$kc_t/p$kc_i\" || continue; "
            f"[ -n \"$kc_p\" ] || continue; : >\"$kc_t/x$kc_i\"; kc_tree \"$kc_p\"; kc_k=\"$kc_k $kc_i\"; done\n"
            # Killed probes get KILL_GRACE seconds to end; the sections still waiting after that are
            # written here (`t<i>`, preferred by the final cat) and their shells killed.
            f"kc_n=0; while [ -n \"$kc_k\" ] && [ $kc_n -lt {KILL_GRACE * 10} ]; do kc_l=; "
            f"for kc_i in $kc_k; do [ -s \"$kc_t/p$kc_i\" ] && kc_l=\"$kc_l $kc_i\"; done; kc_k=$kc_l; "
            f"[ -n \"$kc_k\" ] && sleep 0.1; kc_n=$((kc_n + 1)); done\n"
            f"for kc_i in $kc_k; do printf '%s\\n' '{marker}:'$kc_i':OUT' '' '{marker}:'$kc_i':ERR' "
            f"{q(unkillable)} '{marker}:'$kc_i':RC:{EXIT_TIMEOUT}' >\"$kc_t/t$kc_i\"; "
            f"eval \"kc_tree \\$kc_s$kc_i\"; done ) >/dev/null 2>&1 &\n"
            f"kc_w{seconds}=$!"
        )
    if probes:
        lines.append("wait " + " ".join(f"$kc_s{i}" for i in range(len(probes))))
        lines.append("kill " + " ".join(f"$kc_w{s}" for s in sorted(groups)) + " 2>/dev/null")
        lines.append(f"set --; for kc_i in {' '.join(map(str, range(len(probes))))}; do "
                     f"if [ -f \"$kc_t/t$kc_i\" ]; then set -- \"$@\" \"$kc_t/t$kc_i\"; "
                     f"else set -- \"$@\" \"$kc_t/s$kc_i\"; fi; done")
        lines.append(f"echo '{marker}:B64'")
        lines.append('cat "$@" | base64')
        lines.append(f"echo '{marker}:END'")
    lines.append('rm -rf "$kc_t"')
    lines.append("exit 0")
    return "\n".join(lines)


def decode_batch(lines: list[str], marker: str) -> tuple[list[bytes], str | None]:
    """The batch's stdout lines (base64 between ``MARKER:B64`` and ``MARKER:END``) -> the raw
    section lines as bytes, and the reason when the batch could not run at all."""
    if f"{marker}:NOTMP" in lines:
        return [], NO_TEMP_DIR
    if f"{marker}:NOBASE64" in lines:
        return [], NO_BASE64
    try:
        start = lines.index(f"{marker}:B64") + 1
    except ValueError:
        return [], None
    chunks = []
    for line in lines[start:]:
        if line == f"{marker}:END":
            break
        try:
            chunks.append(binascii.a2b_base64(line))
        except binascii.Error:
            break  # cut mid-line: what decoded so far still holds the complete sections
    return b"".join(chunks).split(b"\n"), None


def split_batch(lines: list[str], marker: str, count: int) -> list[ProbeOutput]:
    """Cut the batch's stdout back into one ProbeOutput per probe.

    A probe whose section is missing (the batch was cut short) gets exit code -1 and says so; one
    whose stdout exceeded :data:`STDOUT_LIMIT` is marked ``truncated`` (its output is not parsed).
    """
    raw, failure = decode_batch(lines, marker)
    if failure:
        return [ProbeOutput(-1, [], [failure]) for _ in range(count)]
    results: list[ProbeOutput | None] = [None] * count
    index = -1
    part = b""
    out: list[bytes] = []
    err: list[bytes] = []
    prefix = marker.encode() + b":"
    for line in raw:
        if line.startswith(prefix):
            fields = line[len(prefix):].split(b":")
            if len(fields) >= 2 and fields[0].isdigit():
                index, part = int(fields[0]), fields[1]
                if part == b"OUT":
                    out, err = [], []
                elif part == b"RC" and 0 <= index < count:
                    rc = int(fields[2]) if len(fields) > 2 and fields[2].lstrip(b"-").isdigit() else -1
                    # The lines joined are exactly the bytes the probe printed; head -c let one
                    # byte over the limit through when it printed more.
                    truncated = len(b"\n".join(out)) > STDOUT_LIMIT
                    results[index] = ProbeOutput(rc, [] if truncated else _text(_trim(out)), _text(_trim(err)),
                                                 truncated=truncated)
                    index = -1
                continue
        if index < 0:
            continue
        (out if part == b"OUT" else err).append(line)
    return [r if r is not None else ProbeOutput(-1, [], ["probe did not complete (batch output cut short)"]) for r in results]


def _text(lines: list[bytes]) -> list[str]:
    return [line.decode("utf-8", "replace") for line in lines]


def _trim(lines: list[bytes]) -> list[bytes]:
    # The section terminator `echo` adds one empty line when the output ended with a newline.
    if lines and lines[-1] == b"":
        return lines[:-1]
    return lines


class ProbeBatch(FactBase):
    """All probes of a playbook run on one host, in one remote command.

    Arguments:
        probes: tuple of ``Probe``
        marker: random section marker (the engine passes a fresh one per run)

    Returns the raw stdout lines (base64 between markers); ``split_batch`` makes them one
    ``ProbeOutput`` per probe.
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
