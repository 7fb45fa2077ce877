"""Run one operation's body the way the operation fixtures do (pyinfra's op context, a fake host
whose facts are given), for tests that then execute the command in a real shell.

``run(zfs, zfs.import_pool, facts={...}, pool="rpool")`` -> (commands, noop descriptions): a
command with per-command arguments (``_stdin``) stays a StringCommand, the others are their text.
"""

from __future__ import annotations

from pyinfra.api import StringCommand
from test_operation_fixtures import run_case


class _Env:
    def setenv(self, key, value):  # run_case's monkeypatch.setenv; these cases set no env
        raise AssertionError("op_runner cases set no environment")


def run(module, op, facts: dict | None = None, **kwargs):
    name = f"{module.__name__.rsplit('.', 1)[1]}.{op.__name__}"
    commands, host = run_case(name, {"kwargs": kwargs, "facts": facts or {}}, _Env())
    out = [c if isinstance(c, StringCommand) and c.connector_arguments else
           (c.get_raw_value() if isinstance(c, StringCommand) else c) for c in commands]
    return out, [host.noop_description] if host.noop_description else []
