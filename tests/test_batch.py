"""The batched probe script, run by a real /bin/sh: sections, exit codes, stderr, timeouts,
hostile bytes, unbounded output, unkillable probes, no private temp dir."""

import os
import secrets
import subprocess
import time
from pathlib import Path

from kc_helpers import frozen_cgroup  # noqa: F401 - a fixture

from keystone_checks.facts.batch import NO_TEMP_DIR, STDOUT_LIMIT, Probe, new_marker, render_batch, split_batch


def run_batch(probes, env=None, timeout=60):
    marker = new_marker()
    script = render_batch(probes, marker)
    done = subprocess.run(["sh", "-c", script], capture_output=True, timeout=timeout, env=env)
    assert done.returncode == 0, "the batch must always exit 0 so pyinfra never fails the host"
    # pyinfra decodes every line as strict UTF-8 (paramiko and @local alike): the batch must give it ASCII
    text = done.stdout.decode("ascii")
    assert max(map(len, text.split("\n"))) <= 100, "short lines only (paramiko's readline is quadratic in a line's length)"
    return split_batch(text.split("\n"), marker, len(probes))


def test_sections_keep_output_exit_code_and_stderr_apart():
    results = run_batch([
        Probe("a", "printf 'one\\ntwo\\n'"),
        Probe("b", "printf 'no newline at end'"),
        Probe("c", "echo oops >&2; exit 3"),
        Probe("d", "true"),
    ])
    assert [r.exit_code for r in results] == [0, 0, 3, 0]
    assert results[0].stdout == ["one", "two"]
    assert results[1].stdout == ["no newline at end"]
    assert results[2].stdout == [] and results[2].stderr == ["oops"]
    assert results[3].stdout == [] and results[3].stderr == []


def test_missing_command_is_127_in_its_own_section_only():
    results = run_batch([
        Probe("missing", "definitely-not-a-command-kc --x", requires="definitely-not-a-command-kc"),
        Probe("after", "echo still here"),
    ])
    assert results[0].exit_code == 127
    assert "command not found" in results[0].stderr_text()
    assert results[1].exit_code == 0 and results[1].stdout == ["still here"]


def test_timeout_is_124_and_does_not_stall_the_rest():
    results = run_batch([Probe("slow", "sleep 30", timeout=1), Probe("next", "echo ok")])
    assert results[0].exit_code == 124
    assert results[1].stdout == ["ok"]


def test_output_cannot_forge_another_section():
    marker = new_marker()
    forged = f"echo '{marker.replace('KC', 'KX')}:1:RC:0'; echo '@@KC-000000000000:1:RC:0'"
    script = render_batch([Probe("a", forged), Probe("b", "echo real")], marker)
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout
    results = split_batch(out.split("\n"), marker, 2)
    assert results[1].stdout == ["real"]


def test_truncated_batch_marks_missing_probes():
    marker = new_marker()
    results = split_batch([f"{marker}:0:OUT", "partial"], marker, 2)
    assert results[0].exit_code == -1 and results[1].exit_code == -1
    assert "did not complete" in results[1].stderr_text()


def test_hostile_values_in_commands_are_quoted():
    from keystone_checks.facts.disks import TargetDisk

    command = TargetDisk().command(path="/dev/vda; touch /tmp/kc-pwned-batch")
    assert "'/dev/vda; touch /tmp/kc-pwned-batch'" in command


def _unique_sleep(whole: int) -> str:
    """A sleep length no other process on the machine carries: `whole` plus random decimals."""
    return f"{whole}.{secrets.randbelow(10**8):08d}"


def _alive(tag):
    """Our processes whose command line carries `tag` (a unique sleep length)."""
    found = subprocess.run(["pgrep", "-f", f"sleep {tag}"], capture_output=True, text=True).stdout.split()
    return [pid for pid in found if pid]


def _gone(tag, within=10.0):
    """Poll (bounded) until no process carries `tag`: a SIGKILLed process takes a moment to be reaped
    on a loaded machine, so a fixed grace is flaky."""
    deadline = time.monotonic() + within
    while _alive(tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _alive(tag) == []


def test_timeout_kills_the_probes_whole_process_tree_and_leaves_nothing_behind():
    tag = _unique_sleep(317)
    started = time.monotonic()
    results = run_batch([Probe("deep", f"sh -c 'sh -c \"sleep {tag}\"'; echo never", timeout=1),
                         Probe("quick", "echo fine")])
    assert time.monotonic() - started < 8, "the watchdog must end the batch soon after the timeout"
    assert results[0].exit_code == 124 and "never" not in results[0].stdout
    assert results[1].exit_code == 0 and results[1].stdout == ["fine"]
    assert _gone(tag), "a timed-out probe's grandchildren must be killed too"


def test_each_probe_keeps_its_own_timeout():
    # a 2 s probe under a 10 s timeout is not cut by the 1 s watchdog of its neighbour
    results = run_batch([Probe("short", "sleep 30", timeout=1), Probe("longer", "sleep 2; echo done", timeout=10)])
    assert results[0].exit_code == 124
    assert results[1].exit_code == 0 and results[1].stdout == ["done"]


def test_a_fast_batch_does_not_wait_for_its_watchdogs_nor_leave_them_running():
    # watchdogs sleep for their timeout: random ones, so a concurrent run of this test elsewhere
    # on the machine cannot be mistaken for ours
    first = 400000 + secrets.randbelow(100000)
    started = time.monotonic()
    results = run_batch([Probe("a", "echo a", timeout=first), Probe("b", "echo b", timeout=first + 1)])
    assert time.monotonic() - started < 3
    assert [r.stdout for r in results] == [["a"], ["b"]]
    assert _gone(f"{first}$") and _gone(f"{first + 1}$")


def test_exit_comments_and_here_documents_stay_inside_their_probe():
    results = run_batch([
        Probe("exits", "echo before; exit 5; echo after"),
        Probe("comment", "echo kept # a trailing comment must not swallow the section"),
        Probe("heredoc", "cat <<'END'\nline one\nEND"),
        Probe("last", "echo last"),
    ])
    assert (results[0].exit_code, results[0].stdout) == (5, ["before"])
    assert results[1].stdout == ["kept"]
    assert results[2].stdout == ["line one"]
    assert results[3].stdout == ["last"]


def test_every_probe_of_every_phase_is_valid_shell():
    """Probes are inlined into one script: a syntax error in one would cost the whole host its answers."""
    from keystone_checks.engine.hostdata import ROLES
    from keystone_checks.engine.plan import PHASES, host_probes

    seen = {}
    for phase in PHASES:
        for role in ROLES:
            for key, command in host_probes(phase, role, {"disk": "/dev/vda"}):
                seen[key] = command
    assert len(seen) > 20
    script = render_batch([Probe(k, c) for k, c in seen.items()], new_marker())
    checked = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    for key, command in seen.items():
        alone = subprocess.run(["sh", "-n", "-c", command], capture_output=True, text=True)
        assert alone.returncode == 0, f"{key}: {alone.stderr}"


def test_bytes_from_a_probe_are_data_not_text():
    """Invalid UTF-8, NUL, terminal escapes: decoded without failing (U+FFFD), later probes intact."""
    results = run_batch([
        Probe("hostile", "printf 'mnt /m\\377nt\\033]0;pwned\\007\\033[2J\\000end\\n'; printf '\\377err' >&2"),
        Probe("after", "echo intact"),
    ])
    assert results[0].exit_code == 0
    assert results[0].stdout == ["mnt /m\ufffdnt\x1b]0;pwned\x07\x1b[2J\x00end"]
    assert results[0].stderr == ["\ufffderr"]
    assert results[1].stdout == ["intact"]


def test_output_is_bounded_and_too_large_is_marked_not_cut():
    exact = f"head -c {STDOUT_LIMIT} /dev/zero | tr '\\000' a"
    started = time.monotonic()
    results = run_batch([
        Probe("5MB", "head -c 5000000 /dev/zero | tr '\\000' x"),
        Probe("100MB-lines", "yes 'a line of a huge listing' | head -c 100000000"),
        Probe("exactly-the-limit", exact),
        Probe("after", "echo intact"),
    ])
    assert time.monotonic() - started < 20, "an emitter is stopped at the limit, not read to its end"
    assert results[0].truncated and results[0].stdout == []
    assert results[1].truncated and results[1].stdout == []
    assert not results[2].truncated and len(results[2].stdout[0]) == STDOUT_LIMIT
    assert results[3].stdout == ["intact"] and not results[3].truncated


def test_a_truncated_probe_is_an_error_never_parsed():
    from keystone_checks.engine.catalog import load_catalog
    from keystone_checks.engine.gather import parse_outputs
    from keystone_checks.engine.plan import plan_host
    from keystone_checks.facts.base import ProbeOutput

    check = next(c for c in load_catalog() if "status" in c.gather and c.gather["status"].fact == "zfs.PoolStatus")
    from keystone_checks.engine.hostdata import KEYS

    context = {k.name: k.default for k in KEYS.values() if k.default is not None} | {"pool": "rpool", "host": "h"}
    plan = plan_host([check], check.roles, context)
    index = plan.probe_index[check.id]["status"]
    healthy = ["  pool: rpool", " state: ONLINE", "config:", "", "errors: No known data errors"]
    outputs = [ProbeOutput(0, [], []) for _ in plan.probes]
    outputs[index] = ProbeOutput(0, healthy, [], truncated=True)
    parsed = parse_outputs([check], plan, outputs)
    assert parsed[index] == (None, f"zfs.PoolStatus: output larger than {STDOUT_LIMIT} bytes (not parsed)")


def test_no_private_temp_dir_fails_closed(tmp_path):
    """mktemp fails: every probe reports it, nothing is written, least of all through a symlink
    planted where a predictable fallback (/tmp/kc.$$) would have been."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mktemp").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "mktemp").chmod(0o755)
    target = tmp_path / "planted-target"
    target.mkdir()
    marker = new_marker()
    script = render_batch([Probe("a", "echo a"), Probe("b", "echo b")], marker)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    # The batch shell keeps the wrapper's pid (exec), so $$ is known before it runs: plant the link first.
    proc = subprocess.Popen(["sh", "-c", 'read go; exec sh -c "$1"', "wrapper", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=env)
    planted = Path(f"/tmp/kc.{proc.pid}")
    planted.symlink_to(target)
    try:
        out, _ = proc.communicate(b"go\n", timeout=30)
    finally:
        planted.unlink()
    results = split_batch(out.decode("ascii").split("\n"), marker, 2)
    assert [r.exit_code for r in results] == [-1, -1]
    assert all(r.stderr == [NO_TEMP_DIR] for r in results)
    assert "cannot create a private temp dir" in NO_TEMP_DIR
    assert list(target.iterdir()) == [], "nothing may be written through the planted symlink"


def test_an_unkillable_probe_is_not_waited_for(tmp_path, frozen_cgroup):  # noqa: F811 - the fixture imported above
    stuck = tmp_path / "zpool"
    # joins the frozen group: from here on it cannot run, nor die, and it holds the probe's stdout
    stuck.write_text(f"#!/bin/sh\necho $$ >{frozen_cgroup / 'tasks'}\necho never\n")
    stuck.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    started = time.monotonic()
    # the shape of zfs.PoolStatus's probe: the shell may exec the last command, so the probe's own
    # pid is the frozen process
    results = run_batch([Probe("stuck", "zpool status -v rpool", requires="zpool", timeout=1),
                         Probe("next", "echo fine"), Probe("slower", "sleep 2; echo done", timeout=10)],
                        env=env, timeout=40)
    elapsed = time.monotonic() - started
    (pid,) = (frozen_cgroup / "tasks").read_text().split()
    assert "State:\tD" in Path(f"/proc/{pid}/status").read_text(), "the simulation: a D-state process"
    assert elapsed < 12, f"the batch must not wait for an unkillable probe ({elapsed:.1f}s)"
    assert results[0].exit_code == 124 and results[0].stdout == []
    assert "did not end within" in results[0].stderr_text()
    assert results[1].stdout == ["fine"] and results[2].stdout == ["done"]


def test_a_probe_may_use_the_batch_s_own_variable_names():
    """A fact that names a variable kc_t (the batch's temp dir) or kc_rc must not redirect the
    batch's bookkeeping: found on the lab guest, where sshd -T output in kc_t broke the section."""
    results = run_batch([
        Probe("a", 'kc_t="port 22"; kc_rc=7; kc_p=x; echo "$kc_t"; exit 3'),
        Probe("b", "echo b"),
    ])
    assert (results[0].exit_code, results[0].stdout) == (3, ["port 22"]), results[0]
    assert (results[1].exit_code, results[1].stdout) == (0, ["b"])


def test_a_probe_that_writes_files_is_bounded_by_a_pipe_not_a_file_size_limit(tmp_path):
    """nix writes its store database and eval cache while it answers: a file-size limit on the
    probe would stop those writes ("File too large"), so such a probe's stdout goes through head."""
    big = tmp_path / "cache.sqlite"
    small = tmp_path / "not-nix"
    write = f"head -c 3000000 /dev/zero > {big}; wc -c < {big}"
    results = run_batch([
        Probe("nix-like", write, writes_files=True),
        Probe("nix-like-loud", "yes 'nix says' | head -c 5000000", writes_files=True),
        Probe("reader", f"head -c 3000000 /dev/zero > {small}; wc -c < {small}"),
    ])
    assert results[0].exit_code == 0 and results[0].stdout == ["3000000"]
    assert results[1].truncated and results[1].stdout == []
    # an ordinary probe keeps the limit on every file it writes: the write is refused, not killed with a core
    assert small.stat().st_size <= STDOUT_LIMIT + 512
    assert "File too large" in results[2].stderr_text()


def test_a_probe_costs_one_fork_beyond_its_own_commands():
    """Host CPU per sweep is mostly process creation: no `head`, `timeout` or `sh -c` per probe.
    Counted from the processes the batch leaves in the kernel's accounting (ps after the fact
    cannot see them), via strace when the machine has it."""
    import shutil

    import pytest

    if shutil.which("strace") is None:
        pytest.skip("strace not installed")
    marker = new_marker()
    probes = [Probe(f"p{i}", ": builtin only") for i in range(20)]
    script = render_batch(probes, marker)
    done = subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", "/dev/stderr", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60)
    execs = [line for line in done.stderr.splitlines() if "execve(" in line and "ENOENT" not in line]
    programs = [line.split('"')[1].rsplit("/", 1)[-1] for line in execs if '"' in line]
    # sh itself, mktemp, one sleep per watchdog, cat, base64, rm: nothing per probe
    assert programs.count("head") == 0, programs
    assert len(programs) <= 8, programs
    assert [r.exit_code for r in split_batch(done.stdout.split("\n"), marker, 20)] == [0] * 20
