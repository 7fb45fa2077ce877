"""Operation fixtures, in pyinfra's own style (pyinfra tests/test_operations.py): one YAML case per
file under tests/fixtures/operations/<module.op>/<case>.yaml, run through pyinfra's operation
context (``ctx_state`` / ``ctx_host`` with a fake host whose facts are the case's ``facts``, like
pyinfra's ``tests/util.py`` FakeHost), calling the operation's generator (``op._inner``); and again through pyinfra's real machinery
(``add_op`` on a real ``State`` with the ``@local`` host, then ``command_generator``), facts patched.

Keys of a case:

- ``args`` / ``kwargs``: the operation's arguments;
- ``facts``: ``{"module.Fact": value}`` for a fact without arguments, or
  ``{"module.Fact": {"arg=value": value}}`` (pyinfra's ``get_kwargs_str`` of the fact's arguments);
  a fact the operation reads that the case does not give fails the case, as in pyinfra;
- ``commands``: the exact commands, in order (a dict ``{command, _stdin}`` when the command carries
  connector arguments; ``{head, script: module.CONSTANT}`` for ``head`` + " " + that fixed script);
- ``noop_description``: what ``host.noop()`` said (required when no command is produced);
- ``exception``: ``{name, message}`` when the operation must refuse with an exception;
- ``env``: controller environment variables for the case (e.g. a passphrase variable);
- ``injection_split``: the operation takes a space-separated list (each item must be one word);
- ``injection``: the hostile string used in the case's arguments (or facts). The case then also
  runs with every payload of ``PAYLOADS`` substituted for it: each produced command is run by
  ``/bin/sh`` with every system tool replaced by a stub (only ``touch`` and harmless coreutils are
  real), and no ``pwned`` file may appear; the payload must survive as (part of) one shell word.

``test_every_operation_has_fixtures_and_an_injection_case`` fails when an operation has no fixture
directory, or takes text from host data (a ``str`` parameter) and has no injection case.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from pyinfra.api import StringCommand
from pyinfra.api.util import get_kwargs_str
from pyinfra.context import ctx_host, ctx_state

import keystone_checks.operations as operations_pkg

FIXTURES = Path(__file__).parent / "fixtures" / "operations"
CASES = sorted(FIXTURES.glob("*/*.yaml"))

PAYLOADS = [
    "rpool; touch pwned",
    "$(touch pwned)",
    "`touch pwned`",
    "x\ntouch pwned",
    "x' ; touch pwned ; '",
    'x" ; touch pwned ; "',
    "-faN; touch pwned",
    "x && touch pwned #",
    "x | touch pwned",
    "$(touch${IFS}pwned)",
]

# Tools the operations call: stubbed (print nothing, exit 0), so a test never mounts, imports or
# wipes anything. Real: the shell's helpers and `touch`, so an injected `touch pwned` would work.
STUBBED = ("zpool", "zfs", "cryptsetup", "umount", "mount", "swapoff", "lsblk", "modprobe", "nix-env",
           "nix-collect-garbage", "nixos-rebuild", "systemctl", "nft", "mkdir", "wipefs", "sgdisk", "stat",
           "readlink", "id")
REAL = ("awk", "sort", "cut", "cat", "timeout", "touch", "sleep", "printf", "test", "[", "true", "false")


def operation_names() -> list[str]:
    names = []
    for info in pkgutil.iter_modules(operations_pkg.__path__):
        module = importlib.import_module(f"{operations_pkg.__name__}.{info.name}")
        for name, func in vars(module).items():
            if hasattr(func, "_inner") and not name.startswith("_") and func.__module__ == module.__name__:
                names.append(f"{info.name}.{name}")
    return sorted(names)


def resolve(name: str):
    module, _, func = name.partition(".")
    return getattr(importlib.import_module(f"keystone_checks.operations.{module}"), func)


class FakeState:
    """The little of pyinfra's State an operation body touches (as pyinfra's tests/util.py)."""

    cwd = "/"
    in_op = True
    is_executing = False


class FakeHost:
    """pyinfra's test FakeHost: facts from the case, keyed like pyinfra's (``module.Fact`` and
    ``get_kwargs_str`` of the arguments); a fact argument the fact's command does not take fails."""

    def __init__(self, name: str, facts: dict):
        self.name = name
        self.facts = facts
        self.data = {}
        self.noop_description = None
        self.in_op = True
        self.in_callback_op = False

    def noop(self, description: str) -> None:
        self.noop_description = description

    def get_fact(self, cls, *args, **kwargs):
        kwargs = {k: v for k, v in kwargs.items() if not k.startswith("_")}  # pyinfra's global arguments
        key = f"{cls.__module__.split('.')[-1]}.{cls.__name__}"
        if key not in self.facts:
            raise KeyError(f"missing test fact data: {key}")
        params = inspect.signature(cls.command).parameters
        names = [n for n in params if n != "self"]
        kwargs = {**dict(zip(names, args)), **kwargs}  # host.get_fact(Command, "...") passes it positionally
        for name in kwargs:
            assert name in params, f"{name} is not an argument of {key}.command"
        if not kwargs:
            return self.facts[key]
        kwargs_str = get_kwargs_str(kwargs)
        if kwargs_str not in self.facts[key]:
            raise KeyError(f"missing test fact data: {key} [{kwargs_str}] (have {list(self.facts[key])})")
        return self.facts[key][kwargs_str]


def substitute(value, old: str, new: str):
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [substitute(v, old, new) for v in value]
    if isinstance(value, dict):
        return {substitute(k, old, new): substitute(v, old, new) for k, v in value.items()}
    return value


def run_case(name: str, case: dict, monkeypatch):
    for key, value in (case.get("env") or {}).items():
        monkeypatch.setenv(key, value)
    host = FakeHost("server1", case.get("facts") or {})
    op = resolve(name)
    with ctx_state.use(FakeState()), ctx_host.use(host):
        commands = list(op._inner(*(case.get("args") or []), **(case.get("kwargs") or {})))
    return commands, host


def as_fixture(command):
    if isinstance(command, StringCommand):
        raw = command.get_raw_value()
        extra = {k: str(v) for k, v in command.connector_arguments.items()}  # a Secret is a str
        return {"command": raw, **extra} if extra else raw
    return command


def expected_commands(case: dict) -> list:
    out = []
    for item in case.get("commands", []):
        if isinstance(item, dict) and "script" in item:
            module, _, const = item["script"].rpartition(".")
            script = getattr(importlib.import_module(f"keystone_checks.operations.{module}"), const)
            out.append(f"{item['head']} {script}")
        else:
            out.append(item)
    return out


def stub_path(tmp: Path) -> str:
    bin_dir = tmp / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in STUBBED:
        stub = bin_dir / tool
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    for tool in REAL:
        real = shutil.which(tool)
        if real and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(real)
    return str(bin_dir)


def run_in_sandbox(commands, tmp: Path) -> list[Path]:
    """Run each command with /bin/sh in ``tmp/work`` on the stubbed PATH; the files it made there."""
    work = tmp / "work"
    work.mkdir(parents=True, exist_ok=True)
    env = {"PATH": stub_path(tmp), "HOME": str(work), "LC_ALL": "C"}
    for command in commands:
        raw = command.get_raw_value() if isinstance(command, StringCommand) else str(command)
        subprocess.run(["/bin/sh", "-c", raw], cwd=work, env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=20)
    return sorted(work.rglob("*pwned*"))


def payload_is_one_word(payload: str, raw: str) -> bool:
    """The payload is inside one shell word of the command, as the shell would split it."""
    try:
        words = shlex.split(raw, posix=True)
    except ValueError:
        return False
    return any(payload in word for word in words)


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_operation_fixture(path, monkeypatch, tmp_path):
    case = yaml.safe_load(path.read_text())
    name = path.parent.name
    exception = case.get("exception")
    if exception:
        with pytest.raises(Exception) as raised:
            run_case(name, case, monkeypatch)
        assert type(raised.value).__name__ == exception["name"], raised.value
        assert str(raised.value) == exception["message"]
        return
    commands, host = run_case(name, case, monkeypatch)
    assert [as_fixture(c) for c in commands] == expected_commands(case)
    if not commands or case.get("noop_description") is not None:
        assert host.noop_description == case.get("noop_description"), "noop_description"
    payload = case.get("injection")
    if payload:
        for hostile in PAYLOADS:
            hostile_case = substitute({k: v for k, v in case.items() if k not in ("commands", "noop_description")},
                                      payload, hostile)
            try:
                produced, _ = run_case(name, hostile_case, monkeypatch)
            except Exception as exc:  # noqa: BLE001 - refusing a hostile value is a fine answer
                assert "refusing" in str(exc) or "not" in str(exc), exc
                continue
            made = run_in_sandbox(produced, tmp_path / f"p{PAYLOADS.index(hostile)}")
            assert not made, f"{name} with {hostile!r} ran the injected command: {produced}"
            for command in produced:
                raw = command.get_raw_value() if isinstance(command, StringCommand) else str(command)
                if "touch" not in raw:
                    continue  # the payload is not part of this command
                # The payload may only appear quoted: then shlex sees it inside one word.
                # An operation documented to take a space-separated list (``injection_split``) quotes each item.
                pieces = hostile.split() if case.get("injection_split") else [hostile]
                for piece in pieces:
                    assert payload_is_one_word(piece, raw), f"{piece!r} split into words in: {raw}"


@pytest.fixture(scope="module")
def local_state():
    """A real pyinfra State with the @local host, connected (pyinfra.api, as a deploy script uses it)."""
    from pyinfra.api import Config, Inventory, State
    from pyinfra.api.connect import connect_all

    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config())
    connect_all(state)
    return state, inventory.get_host("@local")


API_CASES = [p for p in CASES if "exception" not in yaml.safe_load(p.read_text())]


@pytest.mark.parametrize("path", API_CASES, ids=[f"{p.parent.name}/{p.stem}" for p in API_CASES])
def test_operation_fixture_through_pyinfra_api(path, local_state, monkeypatch):
    """The same case through pyinfra's real machinery: ``add_op`` on a real State (the operation
    decorator, its argument handling, change detection), then the op data's ``command_generator``
    -- what ``pyinfra --dry`` lists and a run executes. Only the facts come from the case."""
    from unittest.mock import patch

    from pyinfra.api.operation import add_op

    state, host = local_state
    case = substitute(yaml.safe_load(path.read_text()), "server1:", f"{host.name}:")  # consent names this host
    for key, value in (case.get("env") or {}).items():
        monkeypatch.setenv(key, value)
    fake = FakeHost(host.name, case.get("facts") or {})
    with patch.object(type(host), "get_fact", lambda self, cls, *a, **k: fake.get_fact(cls, *a, **k)):
        meta = add_op(state, resolve(path.parent.name), *(case.get("args") or []), **(case.get("kwargs") or {}))
        with ctx_state.use(state), ctx_host.use(host):
            commands = list(state.get_op_data_for_host(host, meta[host]._hash).command_generator())
    assert [as_fixture(c) for c in commands] == expected_commands(case)


def test_injection_cases_catch_unquoted_commands(tmp_path):
    """The sandbox the injection cases use does run a pasted payload (so those cases can fail)."""
    made = run_in_sandbox([StringCommand("zpool import -N rpool; touch pwned")], tmp_path)
    assert made, "the sandbox must run real `touch`"
    assert not payload_is_one_word("rpool; touch pwned", "zpool import -N rpool; touch pwned")


def test_every_operation_has_fixtures_and_an_injection_case():
    missing, no_injection = [], []
    for name in operation_names():
        cases = sorted((FIXTURES / name).glob("*.yaml"))
        if not cases:
            missing.append(name)
            continue
        op = resolve(name)
        takes_text = any(p.annotation in (str, "str") for p in inspect.signature(op._inner).parameters.values())
        reads_host_text = name in HOST_TEXT_FROM_FACTS
        if (takes_text or reads_host_text) and not any(yaml.safe_load(c.read_text()).get("injection") for c in cases):
            no_injection.append(name)
    assert not missing, f"operations without fixtures in {FIXTURES}: {missing}"
    assert not no_injection, f"operations taking text without an injection case: {no_injection}"


# Operations whose commands carry text read from the host (not from arguments).
HOST_TEXT_FROM_FACTS = {"firewall.allow_tcp_port", "zfs.load_key", "luks.close_mapping"}
