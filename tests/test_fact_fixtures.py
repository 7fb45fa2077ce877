"""Every fact against captured real command output: one YAML case per file, the way pyinfra
tests its own facts (``tests/fixtures/facts/<module.Class>/<case>.yaml``).

Keys: ``args`` (fact arguments), ``command`` (optional: the exact command expected),
``exit_code``, ``output`` (stdout), ``stderr``, and either ``fact`` (expected value) or
``error`` (a substring of the ProbeFailed/UnparseableOutput message).
"""

from pathlib import Path

import pytest
import yaml

from keystone_checks.errors import ProbeFailed, UnparseableOutput
from keystone_checks.facts import FACTS
from keystone_checks.facts.base import ProbeOutput

FIXTURES = Path(__file__).parent / "fixtures" / "facts"
CASES = sorted(FIXTURES.glob("*/*.yaml"))


def _lines(text):
    if text is None or text == "":
        return []
    return text[:-1].split("\n") if text.endswith("\n") else text.split("\n")


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_fact_fixture(path):
    case = yaml.safe_load(path.read_text())
    fact_name = path.parent.name
    assert fact_name in FACTS, f"{path}: no fact named {fact_name}"
    fact = FACTS[fact_name]()
    args = case.get("args", {})
    if "command" in case:
        assert fact.command(**args) == case["command"]
    else:
        assert fact.command(**args)
    probe = ProbeOutput(case.get("exit_code", 0), _lines(case.get("output")), _lines(case.get("stderr")))
    if "error" in case:
        with pytest.raises((ProbeFailed, UnparseableOutput)) as raised:
            fact.parse(probe)
        assert case["error"] in str(raised.value)
    else:
        assert fact.parse(probe) == case["fact"]


def test_every_fact_has_fixtures():
    covered = {p.parent.name for p in CASES}
    missing = sorted(set(FACTS) - covered)
    assert not missing, f"facts without fixtures: {missing}"
