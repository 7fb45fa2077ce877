"""The batched probe script, run by a real /bin/sh: sections, exit codes, stderr, timeouts."""

import subprocess

from keystone_checks.facts.batch import Probe, new_marker, render_batch, split_batch


def run_batch(probes):
    marker = new_marker()
    script = render_batch(probes, marker)
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, "the batch must always exit 0 so pyinfra never fails the host"
    return split_batch(done.stdout.split("\n"), marker, len(probes))


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


def _alive(tag):
    """Processes whose command line carries `tag` (a unique sleep length)."""
    found = subprocess.run(["pgrep", "-f", tag], capture_output=True, text=True).stdout.split()
    return [pid for pid in found if pid]


def test_timeout_kills_the_probes_whole_process_tree_and_leaves_nothing_behind():
    import time

    started = time.monotonic()
    results = run_batch([Probe("deep", "sh -c 'sh -c \"sleep 317.5\"'; echo never", timeout=1),
                         Probe("quick", "echo fine")])
    assert time.monotonic() - started < 8, "the watchdog must end the batch soon after the timeout"
    assert results[0].exit_code == 124 and "never" not in results[0].stdout
    assert results[1].exit_code == 0 and results[1].stdout == ["fine"]
    time.sleep(0.3)
    assert _alive("sleep 317.5") == [], "a timed-out probe's grandchildren must be killed too"


def test_each_probe_keeps_its_own_timeout():
    # a 2 s probe under a 10 s timeout is not cut by the 1 s watchdog of its neighbour
    results = run_batch([Probe("short", "sleep 30", timeout=1), Probe("longer", "sleep 2; echo done", timeout=10)])
    assert results[0].exit_code == 124
    assert results[1].exit_code == 0 and results[1].stdout == ["done"]


def test_a_fast_batch_does_not_wait_for_its_watchdogs_nor_leave_them_running():
    import time

    started = time.monotonic()
    results = run_batch([Probe("a", "echo a", timeout=421), Probe("b", "echo b", timeout=422)])
    assert time.monotonic() - started < 3
    assert [r.stdout for r in results] == [["a"], ["b"]]
    time.sleep(0.3)
    assert _alive("sleep 421") == [] and _alive("sleep 422") == []


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
    from keystone_checks.hostdata import ROLES
    from keystone_checks.plan import PHASES, host_probes

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
