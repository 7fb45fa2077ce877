"""Guarantee: host data that reaches a shell is quoted. Hostile values ("/dev/vda; touch PWNED"
and friends) go through every fact command, and through full real pyinfra CLI runs (@local and a
real sshd; fix=true; --dry and real) of the real catalog and of test checks whose fixes are our
operations (close the credstore, export the pool, the guarded wipe); the PWNED file never appears.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import uuid
from pathlib import Path

import pytest
from kc_helpers import Sshd, read_report, run_pyinfra, write_inventory

from keystone_checks.engine import hostdata
from keystone_checks.facts import FACTS

SAFETY_CHECKS = Path(__file__).parent / "fixtures" / "safety" / "checks"
NOT_SHELL = {"role", "report", "waivers", "luks_passphrase_file", "luks_passphrase_env", "destructive_device"}
# pyinfra's own connector data: a hostile value here only breaks the login (the fact that puts it in a
# command, ssh.SshdAuthorizedKeys, gets every payload in test_every_fact_command_quotes_every_argument).
CONNECTION = {"ssh_user"}


def payloads(pwned: Path) -> list[str]:
    p = str(pwned)
    return [f"/dev/kc-nodisk; touch {p}", f"rpool$(touch {p})", f"cs`touch {p}`", f"x' ; touch {p} ; '",
            f'x" ; touch {p} ; "', f"x\ntouch {p}\n", f"x && touch {p} #", f"-x | touch {p}", f"$(touch${{IFS}}{p})"]


def hostile_data(pwned: Path) -> dict:
    """Every string key a hostile value its grammar still admits (hostdata.check_value): paths may
    hold ``;``, ``$(...)``, backticks and quotes, so quoting must stop them; names (pool, dataset)
    admit none, and values the grammar refuses are refused at load (tests/test_hostdata_grammar.py)."""
    values = payloads(pwned)
    candidates = values + ["/" + v for v in values]
    data, i = {}, 0
    for key in hostdata.KEYS.values():
        if key.name in NOT_SHELL or key.name in CONNECTION or str not in key.types:
            continue
        admitted = [v for v in candidates if hostdata.check_value(key, v) is None]
        if admitted:
            data[key.name] = admitted[i % len(admitted)]
            i += 1
    return data


def _hostile(param, payload):
    """The payload where the argument takes it: inside a mapping (host data ``layout``) or a list
    (host data ``disks``) for arguments annotated so, as the string itself otherwise."""
    annotation = str(param.annotation)
    if "dict" in annotation:
        return {"storage": payload, "boot_loader": payload, payload: payload}
    if "list" in annotation:
        return [payload, payload]
    return payload


def test_every_fact_command_quotes_every_argument(tmp_path):
    """Every fact in the registry (facts added later included), each string argument hostile, run by sh."""
    pwned = tmp_path / f"pwned-{uuid.uuid4().hex}"
    jobs = []
    for name, cls in sorted(FACTS.items()):
        params = [p for p in inspect.signature(cls.command).parameters.values() if p.name != "self"]
        for payload in payloads(pwned):
            try:
                command = str(cls().command(**{p.name: _hostile(p, payload) for p in params}))
            except Exception:  # noqa: BLE001 - a fact may refuse a non-string argument outright
                continue
            jobs.append((name, payload, command))
    built = {name for name, _, _ in jobs}
    unbuilt = [n for n in FACTS if n not in built and not any(
        p.annotation in (int, float, bool, "int", "float", "bool")
        for p in inspect.signature(FACTS[n].command).parameters.values())]
    assert not unbuilt, f"facts whose command refused every string argument: {unbuilt}"
    for start in range(0, len(jobs), 24):  # run in parallel batches: probes mostly wait
        batch = jobs[start:start + 24]
        procs = [subprocess.Popen(["timeout", "5", "/bin/sh", "-c", command], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _, _, command in batch]
        for proc in procs:
            proc.wait(timeout=30)
        if pwned.exists():
            culprits = [f"{n}.command({p!r}):\n{c}" for n, p, c in batch]
            pytest.fail("an injected command ran; one of:\n" + "\n".join(culprits))


@pytest.mark.sshd
def test_hostile_host_data_through_real_pyinfra_runs(tmp_path, request):
    pwned = tmp_path / f"pwned-{uuid.uuid4().hex}"
    server = Sshd(tmp_path / "sshd")
    server.root.mkdir()
    server.start()
    request.addfinalizer(server.stop)
    data = hostile_data(pwned)
    assert data["disk"].startswith("/dev/kc-nodisk; touch") or "touch" in data["disk"], data
    local = {**data, "role": ["installer", "deployed", "controller"], "allow_destructive": True,
             "destructive_device": f"@local:{data['disk']}"}
    remote = {**server.host_data(), **data, "role": ["installer", "deployed"], "allow_destructive": False,
              "destructive_device": f"sshd-host:{data['disk']}"}
    inventory = write_inventory(tmp_path / "inv.py", {"@local": local, "sshd-host": remote})

    def run(playbook, checks_dir, *extra, report):
        env = {"KEYSTONE_CHECKS_DIR": str(checks_dir)} if checks_dir else {}
        done = run_pyinfra(inventory, playbook, "--data", "fix=true", "--data", f"report={report}", *extra, env=env)
        out = done.stdout + done.stderr
        assert "Traceback" not in out, out[-3000:]
        assert not pwned.exists(), f"injected command ran during {playbook} {extra}:\n{out[-3000:]}"
        return read_report(report), out

    # 1. Dry run of our test checks: nothing runs; the plan lists the commands (disruptive and destructive).
    report, out = run("sweep.py", SAFETY_CHECKS, "--dry", report=tmp_path / "dry.json")
    assert report["dry_run"] is True
    hosts = {h["name"]: {r["check"]: r for r in h["results"]} for h in report["hosts"]}
    rollback = hosts["@local"]["safety-disruptive-rollback"]
    assert rollback["outcome"] == "would-fix" and rollback["fix"]["risk"] == "disruptive"
    assert rollback["fix"]["commands"] == ["nixos-rebuild switch --rollback"]
    wipe = hosts["@local"]["safety-disk-wiped"]
    assert wipe["outcome"] == "would-fix", wipe
    (script,) = wipe["fix"]["commands"]
    assert "refusing" in script and "wipefs -a" in script and "sgdisk --zap-all" in script
    refused = hosts["sshd-host"]["safety-disk-wiped"]
    assert refused["outcome"] == "fail" and "allow_destructive" in refused["fix"]["refused"], refused

    # 2. Real run (fix=true, consent given on both hosts): the guard refuses the hostile device on the host.
    remote["allow_destructive"] = True
    write_inventory(tmp_path / "inv.py", {"@local": local, "sshd-host": remote})
    report, out = run("sweep.py", SAFETY_CHECKS / "inject", report=tmp_path / "real.json")
    assert "refusing: device" in out and "does not exist" in out, out[-3000:]
    for host in report["hosts"]:
        results = {r["check"]: r for r in host["results"]}
        assert results["safety-disk-wiped"]["outcome"] == "fix-failed", results

    # 3. The real catalog, dry, every phase's worth of checks on both hosts.
    for playbook in ("sweep.py", "preflight.py", "recovery.py"):
        run(playbook, None, "--dry", report=tmp_path / f"catalog-{playbook}.json")


# -- commands are built from parts: a check of the source ---------------------------------------------

OPERATIONS_DIR = Path(__file__).parent.parent / "keystone_checks" / "operations"
_PASTED = (ast.JoinedStr, ast.BinOp)


def _module_constants(tree: ast.Module) -> set[str]:
    """Names assigned once at module level to a constant string (or a parenthesised concatenation of them)."""
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                names.add(node.targets[0].id)
    return names


def _pasted(node) -> bool:
    """An expression that pastes text together (f-string, %, +, .format)."""
    if isinstance(node, _PASTED):
        return True
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"


def source_problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    constants = _module_constants(tree)
    problems = []
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("sh", "Syntax"):
            arg = node.args[0] if node.args else None
            literal = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            if not literal and not (isinstance(arg, ast.Name) and arg.id in constants):
                problems.append(f"{where}: {node.func.id}() of something else than a constant string")
        if isinstance(node, (ast.Yield, ast.YieldFrom)) and node.value is not None:
            if _pasted(node.value) or (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                problems.append(f"{where}: yields a string instead of a command built from parts")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get_fact":
            if len(node.args) > 1 and (_pasted(node.args[1]) or isinstance(node.args[1], ast.Constant)):
                problems.append(f"{where}: get_fact() with a pasted or free command string")
        if isinstance(node, ast.ImportFrom) and node.module and node.module.endswith("facts.base"):
            if any(a.name == "shell_quote" for a in node.names):
                problems.append(f"{where}: imports shell_quote from facts.base (use keystone_checks.engine.commands)")
    return problems


def test_operations_build_every_command_from_parts():
    problems = [p for path in sorted(OPERATIONS_DIR.glob("*.py")) for p in source_problems(path)]
    assert not problems, "\n".join(problems)


def test_the_source_check_catches_pasted_commands(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from ..facts.base import shell_quote\n"
        "def op(pool):\n"
        "    yield f'zpool import {pool}'\n"
        "    yield 'zpool import ' + pool\n"
        "    yield cmd(sh(f'echo {pool}'))\n"
        "    host.get_fact(Command, f'zpool list {pool}')\n"
    )
    problems = source_problems(bad)
    assert len(problems) == 5, problems


# -- fact commands: only quoted values, numbers and constants are pasted --------------------------------

FACTS_DIR = Path(__file__).parent.parent / "keystone_checks" / "facts"
_QUOTING_CALLS = {"shell_quote", "shell_path", "quote", "int", "float", "_installable", "_captured"}
# network.normalize_targets turns every target's port into an int (or refuses the target).
_TYPED_SUBSCRIPTS = {"port"}


def _safe(node, safe_names: set[str]) -> bool:
    """An expression whose text is quoted, a number or constant text of this repository."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return node.id in safe_names
    if isinstance(node, ast.Attribute):
        return isinstance(node.value, ast.Name) and node.value.id == "self"
    if isinstance(node, ast.Subscript):
        key = node.slice
        return isinstance(key, ast.Constant) and key.value in _TYPED_SUBSCRIPTS
    if isinstance(node, ast.JoinedStr):
        return all(_safe(v.value, safe_names) for v in node.values if isinstance(v, ast.FormattedValue))
    if isinstance(node, (ast.List, ast.Tuple)):
        return all(_safe(e, safe_names) for e in node.elts)
    if isinstance(node, ast.BinOp):
        return _safe(node.left, safe_names) and _safe(node.right, safe_names)
    if isinstance(node, ast.Call):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in _QUOTING_CALLS or name == "max":
            return True
        if name == "join":  # " ".join(shell_quote(u) for u in names)
            return all(_safe(a.elt if isinstance(a, ast.GeneratorExp) else a, safe_names) for a in node.args)
    return False


def _outside_quoting_calls(node):
    """Every node under ``node`` except the arguments of a quoting call: text built inside
    ``shell_quote(f"...")`` reaches the shell as one quoted word, whatever it pastes."""
    for child in ast.iter_child_nodes(node):
        yield child
        if isinstance(child, ast.Call):
            func = child.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in _QUOTING_CALLS:
                continue
        yield from _outside_quoting_calls(child)


def fact_command_problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    module_names = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    module_names |= {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom)
                     for a in n.names if (a.asname or a.name).isupper()}  # imported constants (NIX)
    problems = []
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for fn in (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "command"):
            safe_names = set(module_names)
            unsafe: set[str] = set()
            for node in ast.walk(fn):  # locals holding quoted or constant text (every assignment safe)
                if isinstance(node, (ast.Assign, ast.AugAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        if isinstance(target, ast.Name):
                            (safe_names if _safe(node.value, safe_names) else unsafe).add(target.id)
                        elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple) \
                                and len(target.elts) == len(node.value.elts):  # q, p = quote(a), quote(b)
                            for t, v in zip(target.elts, node.value.elts):
                                if isinstance(t, ast.Name):
                                    (safe_names if _safe(v, safe_names) else unsafe).add(t.id)
                        else:
                            unsafe.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            safe_names -= unsafe
            for node in _outside_quoting_calls(fn):
                if isinstance(node, ast.FormattedValue) and not _safe(node.value, safe_names):
                    problems.append(f"{path.name}:{node.lineno} {cls.name}.command pastes {ast.unparse(node.value)}")
    return problems


def test_fact_commands_paste_only_quoted_values():
    problems = [p for path in sorted(FACTS_DIR.glob("*.py")) for p in fact_command_problems(path)]
    assert not problems, "\n".join(problems)


def test_the_fact_source_check_catches_an_unquoted_value(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("class F:\n    def command(self, pool):\n        q = shell_quote(pool)\n"
                   "        return f'zpool list {q}; zpool status {pool}'\n")
    assert fact_command_problems(bad) == ["bad.py:4 F.command pastes pool"]
    # a tuple assignment is followed element by element; text inside a quoting call is one word
    bad.write_text("class F:\n    def command(self, pool, path):\n        q, p = shell_quote(pool), path\n"
                   "        return f'zpool list {q} {shell_quote(f\"x {pool}\")}; cat {p}'\n")
    assert fact_command_problems(bad) == ["bad.py:4 F.command pastes p"]
