"""The package's folders read as the pipeline, and every import inside it resolves.

Imports inside functions (kept lazy for start-up time) are invisible to the type checker when the
function is untyped; after a move they would fail only when that code path runs. This walks every
module's syntax tree and resolves each ``from X import Y`` against the package as installed.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "keystone_checks"
MODULES = sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = list(package[: len(package) - (node.level - 1)])
            target = ".".join(base + ([node.module] if node.module else []))
        elif node.module and node.module.startswith("keystone_checks"):
            target = node.module
        else:
            continue
        yield node.lineno, target, [alias.name for alias in node.names]


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_every_import_in_the_package_resolves(path):
    problems = []
    for line, target, names in _imports(path):
        if importlib.util.find_spec(target) is None:
            problems.append(f"{path.name}:{line}: no module {target}")
            continue
        module = importlib.import_module(target)
        for name in names:
            if name != "*" and not hasattr(module, name) and importlib.util.find_spec(f"{target}.{name}") is None:
                problems.append(f"{path.name}:{line}: {target} has no {name}")
    assert not problems, problems


def test_the_folders_are_the_pipeline_stages():
    """README's flow: engine (plan, gather, evaluate, fix, outcome), front-ends, tools, reports."""
    for stage in ("engine/plan.py", "engine/gather.py", "engine/evaluate.py", "engine/fix.py", "engine/outcome.py",
                  "frontends/cli.py", "frontends/api.py", "frontends/playbook.py", "reports/__init__.py",
                  "tools/diagnose.py", "facts/batch.py", "operations/__init__.py"):
        assert (PACKAGE / stage).is_file(), stage
    assert not [p.name for p in PACKAGE.glob("*.py") if p.name in ("runner.py", "apirun.py", "hostrun.py", "report.py")]
