"""systemd.start_service on a socket-activated sshd (NixOS ``services.openssh.startWhenNeeded``:
``sshd.socket`` + ``sshd@.service``, no ``sshd.service``, nixpkgs sshd.nix): the queued command,
run by a real shell against a systemctl that knows only those units, starts the socket; with the
old unit list (services only) it fails."""

from __future__ import annotations

import os
import subprocess

from test_operation_fixtures import as_fixture, run_case

FAKE_SYSTEMCTL = """#!/bin/sh
echo "$*" >> "$KC_LOG"
[ "$1" = "--" ] && shift
case "$1" in
  cat) shift; [ "$1" = "--" ] && shift; case "$1" in sshd.socket|sshd@.service) exit 0;; *) echo "No files found for $1." >&2; exit 1;; esac;;
  start) shift; [ "$1" = "--" ] && shift; case "$1" in sshd.socket) exit 0;; *) echo "Unit $1.service not found." >&2; exit 5;; esac;;
esac
exit 1
"""  # noqa: E501 - a shell script


def command_for(units: str, monkeypatch) -> str:
    case = {"kwargs": {"units": units},
            "facts": {"systemd.ServiceActive": {f"units={units}": {"active": [], "any_active": False}}}}
    commands, _ = run_case("systemd.start_service", case, monkeypatch)
    assert len(commands) == 1
    return as_fixture(commands[0])


def test_start_service_starts_the_socket_on_a_socket_activated_host(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "systemctl").write_text(FAKE_SYSTEMCTL)
    (bindir / "systemctl").chmod(0o755)
    log = tmp_path / "log"
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "KC_LOG": str(log)}
    done = subprocess.run(["sh", "-c", command_for("sshd ssh sshd.socket ssh.socket", monkeypatch)], env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "start -- sshd.socket" in log.read_text()
    done = subprocess.run(["sh", "-c", command_for("sshd ssh", monkeypatch)], env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 1 and "none of the units sshd ssh exists" in done.stderr
