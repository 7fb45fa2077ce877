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
