"""The lab's QMP client against a unix-socket peer speaking QMP's wire format (greeting, events,
replies carrying the command's id). CI once read an empty return for ``query-status`` while a
saved state was loading: a reply is matched to its command by id, never taken because it came next."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from keystone_checks.lab.errors import LabError
from keystone_checks.lab.qmp import QMP

GREETING = {"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}


def _peer(path, script):
    """Serve one connection: send the greeting, then for each command received send what
    ``script(cmd)`` returns (a list of messages)."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        conn.sendall(json.dumps(GREETING).encode() + b"\r\n")
        buf = b""
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                cmd = json.loads(line)
                conn.sendall(b"".join(json.dumps(m).encode() + b"\r\n" for m in script(cmd)))
        conn.close()
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def test_a_stray_reply_and_events_are_skipped_until_the_commands_own_reply(tmp_path):
    def script(cmd):
        if cmd["execute"] == "qmp_capabilities":
            return [{"return": {}, "id": cmd["id"]}]
        # What broke CI: something else arrives first (an event, an id-less empty return).
        return [{"event": "RESUME", "timestamp": {"seconds": 1, "microseconds": 0}},
                {"return": {}},
                {"return": {}, "id": cmd["id"] - 1},
                {"return": {"status": "running", "running": True}, "id": cmd["id"]}]

    _peer(tmp_path / "q.sock", script)
    q = QMP(str(tmp_path / "q.sock"), timeout=5)
    try:
        assert q.execute("query-status")["status"] == "running"
    finally:
        q.close()


def test_an_error_reply_names_the_command(tmp_path):
    def script(cmd):
        if cmd["execute"] == "qmp_capabilities":
            return [{"return": {}, "id": cmd["id"]}]
        return [{"error": {"class": "GenericError", "desc": "no migration"}, "id": cmd["id"]}]

    _peer(tmp_path / "q.sock", script)
    q = QMP(str(tmp_path / "q.sock"), timeout=5)
    try:
        with pytest.raises(LabError, match="QMP migrate: no migration"):
            q.execute("migrate", uri="exec:true")
    finally:
        q.close()
