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

from .base import EXIT_NOT_FOUND, EXIT_NOT_RUN, EXIT_TIMEOUT, ProbeOutput, shell_quote

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
    # The command writes files of its own (nix's store database, eval cache): its stdout is bounded
    # through a pipe into `head -c` instead of a file-size limit, which would also stop those writes.
    writes_files: bool = False
    # The command reads the operator's passphrase from $kc_secret (SECRET_VAR): see render_batch.
    secret: bool = False


# The shell variable a probe marked ``secret`` reads the passphrase from. Not exported: it is in no
# process's environment or argv on the host; a probe hands it on with the shell's printf builtin.
SECRET_VAR = "kc_secret"

# `ulimit -f` counts 512-byte blocks (dash, busybox, bash as sh): the limit + one block, so a probe
# printing one byte over STDOUT_LIMIT is still told from one printing exactly the limit.
_FSIZE_BLOCKS = STDOUT_LIMIT // 512 + 1
NO_BOUND = "cannot bound the probe's output (ulimit -f failed): not run"


def render_batch(probes: list[Probe], marker: str) -> str:
    """The shell script running every probe, each in its own delimited section.

    Probes run concurrently, each in one background subshell writing its stdout and its stderr to
    two files in a private ``mktemp -d`` directory (in ``/dev/shm`` where there is one), so a host
    answers in the time of its slowest probe, not the sum of all; one ``cat | base64`` prints the
    sections in probe order. No ``mktemp`` (or no base64): one line saying so and nothing run,
    never a predictable path in /tmp.

    A section is ``MARKER:i:OUT``, the probe's stdout, ``MARKER:i:RC:<status>``, ``MARKER:i:ERR``,
    its stderr. Host CPU is what a fleet sweep spends most of (docs/benchmarks.md), so a probe costs
    one fork and two files beyond its own commands: its stdout is bounded by a file-size limit
    (``ulimit -f``, a builtin; ``SIGXFSZ`` ignored, so an over-long writer gets "File too large"
    and ends instead of dumping core) rather than a ``head`` per probe; an EXIT trap lifts that
    limit and appends the exit status and the stderr marker to the stdout file; stderr is cut to
    :data:`STDERR_LIMIT` by one ``head`` only when the probe wrote any. A probe marked
    ``writes_files`` pipes its stdout through ``head -c`` instead (one byte over the limit) and its
    trap writes a third file.

    One watchdog per distinct timeout sleeps, then kills what is still running of its probes (the
    whole process tree, found with ``pgrep -P``) and marks them timed out (exit code 124, as GNU
    ``timeout`` would). Nothing waits on a pipe, so a probe whose process does not die (D state,
    e.g. ``zpool status`` on a suspended pool) or a child that escaped cannot hold the batch; the
    watchdog gives killed processes :data:`KILL_GRACE` seconds and names a probe whose process is
    still there ("could not be killed") so the operator knows the command hangs in the kernel.

    When a probe is marked ``secret``, the script's first act is to read one line from its stdin
    (the engine sends the passphrase there, gather.py) into the unexported :data:`SECRET_VAR`;
    every probe's own stdin stays ``/dev/null``, so no other command can read it. Without such a
    probe the script reads nothing from stdin.
    """
    q = shell_quote
    lines = [
        "export LC_ALL=C",
        "umask 077",
        # The batch's own stderr would reach pyinfra's strict UTF-8 decoder: probes' stderr is
        # captured per probe, anything else is dropped.
        "exec 2>/dev/null",
        *([f"IFS= read -r {SECRET_VAR} || :"] if any(p.secret for p in probes) else []),
        f"command -v base64 >/dev/null || {{ echo '{marker}:NOBASE64'; exit 0; }}",
        # Fail closed: a predictable fallback path would let a local user plant a symlink that root
        # then writes through.
        # RAM first: a sweep on every timer tick would otherwise write its files to the root pool.
        f'kc_t=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d) && [ -d "$kc_t" ] || {{ echo \'{marker}:NOTMP\'; exit 0; }}',
        # the hard limit, which a probe's trap restores as its soft limit to write its trailer
        "kc_fh=$(ulimit -H -f)",
    ]
    for index, probe in enumerate(probes):
        guard = ""
        if probe.requires:
            guard = (f"command -v {q(probe.requires)} >/dev/null 2>&1 || "
                     f"{{ echo {q(probe.requires + ': command not found')} >&2; exit {EXIT_NOT_FOUND}; }}\n")
        trailer = f"printf '\\\\n%s%s\\\\n%s\\\\n' '{marker}:{index}:RC:' \\\"\\$kc_rc\\\" '{marker}:{index}:ERR'"
        header = f"printf '\\n%s\\n' '{marker}:{index}:OUT' >\"$kc_t/o{index}\"\n"
        # The command sits on lines of its own inside a subshell: its `exit` ends only itself, and a
        # trailing comment or here-document in it cannot swallow the section's closing lines. The
        # trap's paths and limit are expanded now: a probe may use any variable name, kc_t included.
        if probe.writes_files:
            lines.append(
                f"{header}{{ ( trap \"kc_rc=\\$?; {trailer} >'$kc_t/r{index}'\" EXIT\n{guard}{probe.command}\n) "
                f"</dev/null 2>\"$kc_t/e{index}\" | head -c {STDOUT_LIMIT + 1}; }} >>\"$kc_t/o{index}\" &")
        else:
            lines.append(
                f"{header}( trap \"kc_rc=\\$?; ulimit -S -f $kc_fh; {trailer}\" EXIT; trap '' XFSZ\n"
                f"ulimit -S -f {_FSIZE_BLOCKS} || {{ echo {q(NO_BOUND)} >&2; exit {EXIT_NOT_FOUND}; }}\n"
                f"{guard}{probe.command}\n"
                f") </dev/null >>\"$kc_t/o{index}\" 2>\"$kc_t/e{index}\" &")
        lines.append(f"kc_s{index}=$!")
    groups: dict[int, list[int]] = {}
    for index, probe in enumerate(probes):
        groups.setdefault(probe.timeout, []).append(index)
    if groups:
        # kc_tree: stop first so the tree cannot grow while it is walked; records what it killed.
        # kc_alive: the process still exists and is not a zombie (state after the last ") "), left in kc_l.
        lines.append(
            'kc_tree() { kill -STOP "$1" 2>/dev/null; kc_d="$kc_d $1"; '
            'for kc_c in $(pgrep -P "$1" 2>/dev/null); do kc_tree "$kc_c"; done; kill -KILL "$1" 2>/dev/null; }\n'
            'kc_alive() { read -r kc_l <"/proc/$1/stat" 2>/dev/null || return 1; kc_l=${kc_l##*) }; '
            'case $kc_l in Z*|X*|x*) return 1;; esac; }\n'
            # kc_ours: a probe still running, its pid not reused: alive and still a child of the batch
            # ($$ is the batch shell's pid in every subshell).
            'kc_ours() { kc_alive "$1" || return 1; set -- $kc_l; [ "$2" = "$$" ]; }')
    unkillable = f"probe did not end within {KILL_GRACE}s of being killed (uninterruptible?): not waited for"
    for seconds, indexes in sorted(groups.items()):
        members = " ".join(map(str, indexes))
        lines.append(
            # The batch ends a sleeping watchdog by killing its sleep (pid in z<seconds>): wait then
            # fails and the watchdog exits without touching a probe.
            f"( sleep {int(seconds)} & echo $! >\"$kc_t/z{seconds}\"; wait $! || exit 0\n"
            f"kc_k=; for kc_i in {members}; do eval \"kc_p=\\$kc_s$kc_i\"; kc_ours \"$kc_p\" || continue; "
            f"kc_d=; kc_tree \"$kc_p\"; eval \"kc_d$kc_i=\\$kc_d\"; kc_k=\"$kc_k $kc_i\"; "
            f"printf '\\n%s\\n%s\\n' '{marker}:'$kc_i':RC:{EXIT_TIMEOUT}' '{marker}:'$kc_i':ERR' >\"$kc_t/t$kc_i\"; done\n"
            f"kc_n=0; while [ -n \"$kc_k\" ] && [ $kc_n -lt {KILL_GRACE * 10} ]; do kc_l2=; "
            f"for kc_i in $kc_k; do eval \"kc_d=\\$kc_d$kc_i\"; for kc_p in $kc_d; do "
            f"if kc_alive \"$kc_p\"; then kc_l2=\"$kc_l2 $kc_i\"; break; fi; done; done; kc_k=$kc_l2; "
            f"[ -n \"$kc_k\" ] && sleep 0.1; kc_n=$((kc_n + 1)); done\n"
            f"for kc_i in $kc_k; do printf '\\n%s' {q(unkillable)} >\"$kc_t/n$kc_i\"; done ) >/dev/null 2>&1 &\n"
            f"kc_w{seconds}=$!"
        )
    if probes:
        lines.append("wait " + " ".join(f"$kc_s{i}" for i in range(len(probes))))
        for seconds in sorted(groups):
            # A watchdog that has not yet written its sleep's pid (a loaded host: it was not scheduled
            # yet) is stopped, so it cannot start anything more, and killed with what it started.
            lines.append(f"if [ -s \"$kc_t/z{seconds}\" ]; then read kc_z <\"$kc_t/z{seconds}\"; kill $kc_z; "
                         f"else kill -STOP $kc_w{seconds}; for kc_c in $(pgrep -P $kc_w{seconds}); do kill -KILL $kc_c; "
                         f"done; kill -KILL $kc_w{seconds}; fi 2>/dev/null")
        lines.append("wait " + " ".join(f"$kc_w{s}" for s in sorted(groups)))
        lines.append(f"set --; for kc_i in {' '.join(map(str, range(len(probes))))}; do "
                     f"set -- \"$@\" \"$kc_t/o$kc_i\"; "
                     f"for kc_f in r t; do [ -f \"$kc_t/$kc_f$kc_i\" ] && set -- \"$@\" \"$kc_t/$kc_f$kc_i\"; done; "
                     f"kc_e=\"$kc_t/e$kc_i\"; if [ -s \"$kc_e\" ]; then "
                     f"head -c {STDERR_LIMIT} \"$kc_e\" >\"$kc_t/E$kc_i\"; kc_e=\"$kc_t/E$kc_i\"; fi; "
                     f"set -- \"$@\" \"$kc_e\"; "
                     f"[ -f \"$kc_t/n$kc_i\" ] && set -- \"$@\" \"$kc_t/n$kc_i\"; done")
        lines.append(f"echo '{marker}:B64'")
        lines.append('cat "$@" | base64')
        lines.append(f"echo '{marker}:END'")
    lines.append('rm -rf "$kc_t"')
    if any(p.secret for p in probes):
        lines.append(f"unset {SECRET_VAR}")
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
        return [ProbeOutput(EXIT_NOT_RUN, [], [failure]) for _ in range(count)]
    results: list[ProbeOutput | None] = [None] * count
    index, rc, part = -1, None, b""
    out: list[bytes] = []
    err: list[bytes] = []
    prefix = marker.encode() + b":"

    def close() -> None:
        # A section without its status (cut short) stays None; the first status wins (a watchdog's
        # 124 written just as the probe ended comes second).
        if 0 <= index < count and rc is not None:
            # The lines joined are exactly the bytes the probe printed; the bound let one byte over
            # the limit through when it printed more.
            truncated = len(b"\n".join(out)) > STDOUT_LIMIT
            results[index] = ProbeOutput(rc, [] if truncated else _text(_trim(out)), _text(_trim(err)),
                                         truncated=truncated)

    for line in raw:
        if line.startswith(prefix):
            fields = line[len(prefix):].split(b":")
            if len(fields) >= 2 and fields[0].isdigit():
                if fields[1] == b"OUT":
                    close()
                    index, rc, part, out, err = int(fields[0]), None, b"OUT", [], []
                elif int(fields[0]) == index and fields[1] == b"RC":
                    if rc is None:
                        rc = int(fields[2]) if len(fields) > 2 and fields[2].lstrip(b"-").isdigit() else -1
                    part = b"RC"
                elif int(fields[0]) == index and fields[1] == b"ERR":
                    part = b"ERR"
                continue
        if index < 0:
            continue
        if part == b"OUT":
            out.append(line)
        elif part == b"ERR":
            err.append(line)
    close()
    return [r if r is not None else ProbeOutput(EXIT_NOT_RUN, [], ["probe did not complete (batch output cut short)"]) for r in results]


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
