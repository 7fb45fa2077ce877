"""Guarantee: every fact parser, on any output, returns a value or raises the project's own
UnparseableOutput / ProbeFailed (which become an `error` outcome) -- never another exception.

The registry is iterated at collection time, so facts added later are fuzzed automatically.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keystone_checks.errors import ProbeFailed, UnparseableOutput
from keystone_checks.facts import FACTS
from keystone_checks.facts.base import ProbeOutput

FIXTURES = Path(__file__).parent / "fixtures" / "facts"
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@cache
def _real_outputs(fact_name: str) -> list[dict]:
    cases = []
    for path in sorted((FIXTURES / fact_name).glob("*.yaml")) if (FIXTURES / fact_name).is_dir() else []:
        case = yaml.safe_load(path.read_text()) or {}
        cases.append({"output": str(case.get("output") or ""), "stderr": str(case.get("stderr") or ""),
                      "exit_code": int(case.get("exit_code") or 0)})
    # Outputs of other facts too: a fact fed a neighbour's real output is a realistic garbage input.
    return tuple(cases)


ALL_REAL = tuple(c for name in FACTS for c in _real_outputs(name)) or ({"output": "", "stderr": "", "exit_code": 0},)
EXIT_CODES = st.one_of(st.sampled_from([0, 1, 2, 4, 124, 127, 255]), st.integers(min_value=-300, max_value=300))
LINES = st.lists(st.text(max_size=120), max_size=12)


def _check(fact_name: str, result: ProbeOutput) -> None:
    fact = FACTS[fact_name]()
    try:
        fact.parse(result)
    except (UnparseableOutput, ProbeFailed):
        pass
    except Exception as exc:  # noqa: BLE001 - this IS the assertion
        pytest.fail(f"{fact_name}.parse raised {type(exc).__name__}: {exc!r} on {result!r}")


@pytest.mark.parametrize("fact_name", sorted(FACTS))
@FUZZ
@given(stdout=LINES, stderr=LINES, exit_code=EXIT_CODES)
def test_fact_parser_survives_arbitrary_text(fact_name, stdout, stderr, exit_code):
    _check(fact_name, ProbeOutput(exit_code, stdout, stderr))


@pytest.mark.parametrize("fact_name", sorted(FACTS))
@FUZZ
@given(data=st.data(), exit_code=st.one_of(st.just(0), EXIT_CODES))
def test_fact_parser_survives_truncated_real_output(fact_name, data, exit_code):
    own = _real_outputs(fact_name)
    case = data.draw(st.sampled_from(own + ALL_REAL if own else ALL_REAL))
    text = case["output"]
    cut = data.draw(st.integers(min_value=0, max_value=len(text)))
    start = data.draw(st.sampled_from([0, 0, 0, cut // 2]))
    mutated = text[start:cut]
    if data.draw(st.booleans()):  # splice some junk at the cut
        mutated += data.draw(st.sampled_from(["", "\x00", "{", "]", "null", "-1", "é", "\t\t", " is active", "resolved "]))
    _check(fact_name, ProbeOutput(exit_code, mutated.splitlines(), case["stderr"].splitlines()))


@pytest.mark.parametrize("fact_name", sorted(FACTS))
def test_fact_parser_survives_real_output_with_every_exit_code(fact_name):
    for case in _real_outputs(fact_name) or ALL_REAL[:1]:
        for code in (0, 1, 2, 3, 4, 124, 127, 128, 137, 255, -1):
            _check(fact_name, ProbeOutput(code, case["output"].splitlines(), case["stderr"].splitlines()))


def test_registry_is_not_empty():
    assert len(FACTS) >= 6
