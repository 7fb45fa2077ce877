"""Minimal QMP client (QEMU Machine Protocol over a unix socket).

Only what the lab needs: stop/cont, migrate to/from a file, query status, quit.
No third-party dependency so the lab runs wherever QEMU runs.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from keystone_checks.lab.errors import LabError


class QMP:
    def __init__(self, path: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise LabError(f"QEMU monitor socket {path} did not come up") from None
                time.sleep(0.1)
        self.sock.settimeout(timeout)
        self.buf = b""
        self._id = 0
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise LabError("QEMU monitor closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, cmd: str, **args) -> Any:
        # Each command carries its own id and only the reply with that id answers it: events, and
        # a reply QEMU sends for an earlier command (or without an id) while an incoming migration
        # is loading, are skipped. Taking the first non-event reply once read an empty return for
        # query-status in CI (KeyError: 'status').
        self._id += 1
        msg: dict[str, Any] = {"execute": cmd, "id": self._id}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if reply.get("id") != self._id:
                continue
            if "error" in reply:
                raise LabError(f"QMP {cmd}: {reply['error'].get('desc')}")
            return reply.get("return", {})

    def hmp(self, line: str) -> str:
        return str(self.execute("human-monitor-command", **{"command-line": line}))

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
