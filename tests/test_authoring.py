"""Authoring support: the editor schema line in every check file, a description on every schema
field, and realistic authoring mistakes caught by the schema (what an editor shows) and/or by
``keystone-checks validate`` (which runs the schema too)."""

import copy
import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from keystone_checks.engine.catalog import check_schema, validate

REPO = Path(__file__).resolve().parent.parent
SCHEMA_PATH = REPO / "keystone_checks" / "schema" / "check.schema.json"
CHECK_FILES = sorted((REPO / "checks").rglob("*.yaml"))
SCHEMA_LINE = "# yaml-language-server: $schema="


@pytest.mark.parametrize("path", CHECK_FILES, ids=[p.stem for p in CHECK_FILES])
def test_every_check_file_starts_with_the_editor_schema_line(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith(SCHEMA_LINE), f"{path}: first line must be '{SCHEMA_LINE}<relative path>'"
    target = (path.parent / first[len(SCHEMA_LINE):].strip()).resolve()
    assert target == SCHEMA_PATH.resolve(), f"{path}: the $schema path resolves to {target}, not the shipped schema"


def _fields(node, path=""):
    """Every (path, schema) that describes a field: properties, items, map values, oneOf branches."""
    if not isinstance(node, dict):
        return
    for name, sub in node.get("properties", {}).items():
        yield f"{path}.{name}", sub
        yield from _fields(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield f"{path}[{key}]", node[key]
            yield from _fields(node[key], f"{path}[{key}]")
    for i, sub in enumerate(node.get("oneOf", [])):
        yield from _fields(sub, f"{path}(oneOf {i})")
    for name, sub in node.get("$defs", {}).items():
        yield f"$defs.{name}", sub
        yield from _fields(sub, f"$defs.{name}")


def test_every_schema_field_has_a_description():
    schema = json.loads(SCHEMA_PATH.read_text())
    # a bare {"$ref": ...} takes the description of what it refers to
    missing = [path for path, sub in _fields(schema) if not sub.get("description") and set(sub) != {"$ref"}]
    assert not missing, f"schema fields without a description: {missing}"


def test_schema_id_is_not_an_unfetchable_url():
    schema = json.loads(SCHEMA_PATH.read_text())
    assert not schema["$id"].startswith(("http:", "https:")), "editors may try to fetch an http(s) $id"
    Draft202012Validator.check_schema(schema)


GOOD = {
    "id": "pool-is-healthy-example",
    "title": "The pool is healthy",
    "severity": "critical",
    "phases": ["zfs"],
    "roles": ["deployed"],
    "guide": {"document": "troubleshooting-nixos-anywhere-vm-install.md", "section": "Issue: ZFS Pool Not Imported"},
    "why": "A degraded or faulted pool loses data on the next failure.",
    "depends_on": ["pool-imported"],
    "gather": {"status": {"fact": "zfs.PoolStatus", "args": {"pool": "{{ pool }}"}}},
    "expect": {"properties": {"status": {"properties": {"state": {"const": "ONLINE", "description": "the pool ONLINE"}}}}},
    "fix": {"risk": "safe", "summary": "Import the pool.", "playbook": "playbooks/fix/import-pool.py",
            "steps": [{"op": "zfs.import_pool", "args": {"pool": "{{ pool }}"}}]},
}


def _set(path, value):
    def mutate(data):
        *parents, last = path
        for key in parents:
            data = data[key]
        if value is KeyError:
            del data[last]
        else:
            data[last] = value
    return mutate


def _rename(old, new):
    def mutate(data):
        data[new] = data.pop(old)
    return mutate


STATUS = ("expect", "properties", "status")
# (mistake, how to make it, caught by the schema alone (what an editor underlines), text validate prints)
MISTAKES = [
    ("wrong severity value", _set(("severity",), "high"), True, "severity: 'high' is not one of"),
    ("typo in a top-level key", _rename("depends_on", "depend_on"), True, "'depend_on' was unexpected"),
    ("missing title", _set(("title",), KeyError), True, "'title' is a required property"),
    ("unknown phase", _set(("phases",), ["zfs-pool"]), True, "'zfs-pool' is not one of"),
    ("unknown role", _set(("roles",), ["installed"]), True, "'installed' is not one of"),
    ("fact without its module", _set(("gather", "status", "fact"), "PoolStatus"), True, "does not match"),
    ("fix with steps but no risk", _set(("fix", "risk"), KeyError), True, "a fix has either 'steps' with a 'risk'"),
    ("expect without the properties level", _set(STATUS, {"state": {"const": "ONLINE"}}), True,
     "'state' is a field of status: put it under 'properties:'"),
    ("expect naming a field the fact does not have", _set(STATUS + ("properties",), {"health": {"const": "ONLINE"}}), False,
     "status has no field 'health'"),
    ("expect with a type the field never has", _set(STATUS + ("properties",), {"found": {"const": "true"}}), False,
     "const 'true' can never match: status.found is boolean"),
    ("pool state in the wrong case", _set(STATUS + ("properties",), {"state": {"const": "Online"}}), False,
     "const 'Online' can never match: status.state is one of 'ONLINE'"),
    ("unknown fact", _set(("gather", "status", "fact"), "zfs.PoolState"), False, "unknown fact 'zfs.PoolState'"),
    ("fact argument typo", _set(("gather", "status", "args"), {"pol": "{{ pool }}"}), False, "takes no argument 'pol'"),
    ("guide section typo", _set(("guide", "section"), "Issue: ZFS Pool Not Imprted"), False, "is not a heading of"),
    ("depends_on an unknown id", _set(("depends_on",), ["pool-imprted"]), False, "unknown check id 'pool-imprted'"),
    ("fix playbook that does not exist", _set(("fix", "playbook"), "playbooks/fix/import.py"), False, "does not exist"),
]


def test_the_good_example_is_valid(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(yaml.safe_dump(GOOD, sort_keys=False))
    assert validate([path], against=[REPO / "checks"])[1] == []


@pytest.mark.parametrize("name, mutate, by_schema, message", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_authoring_mistake_is_flagged(tmp_path, name, mutate, by_schema, message):
    data = copy.deepcopy(GOOD)
    mutate(data)
    path = tmp_path / "mistake.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    _, problems = validate([path], against=[REPO / "checks"])
    texts = [str(p) for p in problems]
    assert any(message in t and t.startswith(f"{path}:") for t in texts), (name, texts)
    if by_schema:
        assert list(Draft202012Validator(check_schema()).iter_errors(data)), f"{name}: an editor would not flag it"


def test_at_least_eleven_mistakes_are_covered():
    assert len(MISTAKES) >= 11


def _readme_example() -> str:
    import textwrap

    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- example-check", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    return textwrap.dedent(block)


def test_readme_walkthrough_check_is_valid_and_its_mistake_is_reported_as_shown(tmp_path):
    from keystone_checks.engine.catalog import load_file
    from keystone_checks.engine.evaluate import Outcome, evaluate

    text = _readme_example()
    assert text.startswith(SCHEMA_LINE)
    path = tmp_path / "tmp-free-space.yaml"
    path.write_text(text)
    assert validate([path], against=[REPO / "checks"])[1] == []
    check = load_file(path)[0]
    roomy = {"avail": 5 * 2**30, "fstype": "tmpfs", "size": 8 * 2**30, "used": 3 * 2**30, "source": "tmpfs", "target": "/tmp"}
    assert evaluate(check, {"tmp": roomy}, {}).outcome == Outcome.PASS
    assert evaluate(check, {"tmp": {**roomy, "avail": 2**20}}, {}).outcome == Outcome.FAIL
    # the mistake the README quotes, at the line it quotes
    path.write_text(text.replace("      properties:\n        avail:", "        avail:"))
    problems = [str(p) for p in validate([path], against=[REPO / "checks"])[1]]
    assert problems == [(f"{path}:18: expect.properties.tmp: 'avail' is not a JSON Schema keyword, so it would be ignored "
                        "and never fail; 'avail' is a field of tmp: put it under 'properties:'")], problems


def test_typed_check_parts_survive_the_catalog_cache(tmp_path, monkeypatch):
    """The catalog cache stores checks as plain data; read back they are the same typed checks."""
    from keystone_checks.engine.catalog import Fix, Gather, Step, describe_fix, load_catalog

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = {c.id: c for c in load_catalog()}
    again = {c.id: c for c in load_catalog()}  # from the cache
    assert list((tmp_path / "cache").rglob("*.json"))
    assert first == again
    check = again["crypt-keys-loaded"]
    assert isinstance(check.gather["crypt"], Gather) and check.gather["crypt"].fact == "zfs.DatasetProperties"
    assert isinstance(check.fix, Fix) and all(isinstance(s, Step) for s in check.fix.steps)
    assert check.fix.ops == ["zfs.load_key", "zfs.mount_all"] and check.fix.playbook == "playbooks/fix/load-keys.py"
    described = describe_fix(check)
    assert described.kind == "automated" and described.risk == "safe" and "playbooks/fix/load-keys.py" in described.command
    assert describe_fix(again["target-ping"]).kind == "manual"
