"""Every fact declares the shape of its value (keystone_checks/engine/shapes.py), every fixture's expected
value matches it, and ``validate`` holds each check's ``expect`` against those shapes."""

from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from keystone_checks.engine import shapes
from keystone_checks.engine.catalog import validate
from keystone_checks.facts import FACTS

FIXTURES = Path(__file__).parent / "fixtures" / "facts"
VALUES = sorted(p for p in FIXTURES.glob("*/*.yaml") if "fact" in yaml.safe_load(p.read_text()))


def test_every_fact_has_a_shape():
    missing = sorted(set(FACTS) - set(shapes.SHAPES))
    assert not missing, f"facts without a shape in keystone_checks/engine/shapes.py: {missing}"
    assert not sorted(set(shapes.SHAPES) - set(FACTS)), "shapes for facts that do not exist"


@pytest.mark.parametrize("name", sorted(shapes.SHAPES))
def test_shape_is_a_valid_schema(name):
    Draft202012Validator.check_schema(shapes.SHAPES[name])


@pytest.mark.parametrize("path", VALUES, ids=[f"{p.parent.name}/{p.stem}" for p in VALUES])
def test_fixture_value_matches_its_fact_shape(path):
    value = yaml.safe_load(path.read_text())["fact"]
    errors = [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
              for e in Draft202012Validator(shapes.SHAPES[path.parent.name]).iter_errors(value)]
    assert not errors, errors


def test_every_fact_has_a_fixture_value_for_its_example():
    """docs/facts.md shows an example value from the fixtures: each fact needs at least one."""
    assert {p.parent.name for p in VALUES} == set(FACTS)


def test_shape_closed_objects_catch_extra_fields():
    """A shape is not a rubber stamp: a value with a field the fact does not return is refused."""
    assert not Draft202012Validator(shapes.SHAPES["system.DiskFree"]).is_valid(
        {"avail": 1, "fstype": "vfat", "size": 2, "source": "/dev/vda1", "target": "/boot", "used": 1, "extra": 0})


CHECK = """\
id: esp-room-example
title: The ESP has room
severity: warning
phases: [boot]
roles: [deployed]
guide:
  document: troubleshooting-build-and-deploy.md
  section: 'Error: "out of disk space"'
why: The ESP needs room for the next kernels.
gather:
  esp:
    fact: system.DiskFree
    args: {{path: /boot}}
expect:
{expect}
"""


def _problems(tmp_path, expect: str) -> list[str]:
    path = tmp_path / "c.yaml"
    path.write_text(CHECK.format(expect=expect))
    _, problems = validate([path])
    return [str(p) for p in problems]


@pytest.mark.parametrize("expect, line, message", [
    # the missing `properties:` level: `avail` would be an unknown keyword and the check always pass
    ("  properties:\n    esp:\n      avail: {minimum: 1}", 17, "'avail' is a field of esp: put it under 'properties:'"),
    ("  properties:\n    esp:\n      properties:\n        avial: {minimum: 1}", 18, "esp has no field 'avial'"),
    ("  properties:\n    esp:\n      properties:\n        fstype: {minimum: 3}", 18,
     "'minimum' applies to number values but esp.fstype is string"),
    ("  properties:\n    esp:\n      properties:\n        avail: {const: 'lots'}", 18,
     "const 'lots' can never match: esp.avail is integer"),
    ("  properties:\n    esp:\n      properties:\n        avail: {type: string}", 18, "type string can never match"),
    ("  properties:\n    esp:\n      properties:\n        target: {enum: [/boot, 1]}", 18, "enum value 1 can never match"),
    ("  properties:\n    boot:\n      properties:\n        avail: {minimum: 1}", 17,
     "'boot' is not a name under this check's gather (names: esp)"),
    ("  properties:\n    esp: {required: [free]}", 16, "esp has no field 'free'"),
    ("  properties:\n    esp: {maxItems: 0}", 16, "'maxItems' applies to array values but esp is object"),
    ("  anyOf:\n    - properties: {esp: {properties: {avail: {minimumm: 1}}}}", 16, "'minimumm' is not a JSON Schema keyword"),
])
def test_validate_flags_expect_against_the_fact_shape(tmp_path, expect, line, message):
    problems = _problems(tmp_path, expect)
    assert any(message in p for p in problems), problems
    assert any(p.startswith(f"{tmp_path / 'c.yaml'}:{line}:") and message in p for p in problems), problems


def test_const_outside_the_fact_vocabulary_is_flagged(tmp_path):
    text = CHECK.replace("fact: system.DiskFree", "fact: network.TcpPort").replace("{{path: /boot}}", '{{targets: "{{{{ targets }}}}"}}')
    path = tmp_path / "c.yaml"
    path.write_text(text.format(expect="  properties:\n    esp:\n      additionalProperties:\n"
                                       "        properties: {status: {const: open}}"))
    problems = [str(p) for p in validate([path])[1]]
    assert len(problems) == 1 and "const 'open' can never match: esp.*.status is one of 'ok', 'invalid'" in problems[0], problems


def test_a_correct_expect_passes(tmp_path):
    assert _problems(tmp_path, "  properties:\n    esp:\n      properties:\n        avail: {minimum: 1, description: room}") == []


def test_applies_when_schema_is_held_against_its_fact(tmp_path):
    text = CHECK.format(expect="  properties: {}") + (
        "applies_when:\n  gather: esp\n  description: the ESP is vfat\n  schema: {properties: {fs_type: {const: vfat}}}\n")
    path = tmp_path / "c.yaml"
    path.write_text(text)
    _, problems = validate([path])
    assert any("esp (system.DiskFree) has no field 'fs_type'" in str(p) for p in problems), problems


def test_the_catalog_expects_match_the_fact_shapes():
    checks, problems = validate([Path(__file__).parent.parent / "checks"])
    assert not problems and len(checks) > 50, problems


def test_fact_reference_lists_every_fact_with_its_fields_and_an_example():
    from keystone_checks.tools import docs

    text = docs.render_facts()
    for name in FACTS:
        section = text.split(f"## `{name}`", 1)[1].split("\n## ", 1)[0]
        assert "Example (tests/fixtures/facts/" in section, name
        assert "Value: " in section, name
    assert "| `avail` | integer |" in text.split("## `system.DiskFree`", 1)[1].split("\n## ", 1)[0]


def test_docs_check_reports_a_stale_fact_reference(tmp_path):
    from keystone_checks.frontends.cli import main

    stale = tmp_path / "facts.md"
    stale.write_text("# old\n")
    assert main(["docs", "--check", "--facts-output", str(stale)]) == 1
    assert main(["docs", "--facts-output", str(stale), "--output", str(tmp_path / "checks.md")]) == 0
    assert main(["docs", "--check", "--facts-output", str(stale), "--output", str(tmp_path / "checks.md")]) == 0
