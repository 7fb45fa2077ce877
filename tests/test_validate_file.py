"""``keystone-checks validate FILE``: a new check file is judged against the whole catalog (ids,
depends_on, cycles), and against the guides and playbooks it names."""

from pathlib import Path

import pytest

from keystone_checks.engine.catalog import validate
from keystone_checks.frontends.cli import main

CATALOG = Path(__file__).resolve().parent.parent / "checks"

NEW = """\
id: {id}
title: A new check for this test
severity: warning
phases: [zfs]
roles: [deployed]
guide:
  document: troubleshooting-nixos-anywhere-vm-install.md
  section: '{section}'
why: Because the pool must be healthy.
depends_on: [{depends_on}]
gather:
  status:
    fact: zfs.PoolStatus
    args: {{pool: "{{{{ pool }}}}"}}
expect:
  properties:
    status:
      properties:
        found: {{const: true}}
{fix}"""


def _write(tmp_path, id="brand-new-check", section="Issue: ZFS Pool Not Imported", depends_on="pool-imported", fix=""):
    path = tmp_path / f"{id}.yaml"
    path.write_text(NEW.format(id=id, section=section, depends_on=depends_on, fix=fix))
    return path


def _problems(path, against=(CATALOG,)):
    checks, problems = validate([path], against=list(against))
    return checks, [str(p) for p in problems]


def test_a_good_new_file_is_ok_against_the_catalog(tmp_path):
    checks, problems = _problems(_write(tmp_path))
    assert problems == [] and [c.id for c in checks] == ["brand-new-check"]


def test_duplicate_id_is_blamed_on_the_new_file(tmp_path):
    path = _write(tmp_path, id="pool-healthy")
    _, problems = _problems(path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}:1: duplicate id 'pool-healthy' (first defined in ")
    assert problems[0].endswith("checks/zfs/pool-healthy.yaml)")


def test_depends_on_resolves_against_the_catalog_and_unknown_ids_are_errors(tmp_path):
    _, problems = _problems(_write(tmp_path, depends_on="pool-imported"))
    assert problems == []  # a catalog check: fine although not in the validated files
    path = _write(tmp_path, depends_on="pool-imprted")
    _, problems = _problems(path)
    assert problems == [f"{path}:10: depends_on: unknown check id 'pool-imprted'"]


def test_a_cycle_through_the_new_file_is_reported_on_it(tmp_path):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    # a catalog check that depends on the new one, which depends on it back
    text = (CATALOG / "zfs" / "pool-imported.yaml").read_text()
    text = "\n".join(line for line in text.splitlines() if not line.startswith("depends_on:"))
    (catalog / "pool-imported.yaml").write_text(text + "\ndepends_on: [needs-imported]\n")
    new = _write(tmp_path, id="needs-imported", depends_on="pool-imported")
    _, problems = _problems(new, against=[catalog])
    assert problems == [f"{new}:10: depends_on cycle: needs-imported -> pool-imported -> needs-imported"], problems


def test_guide_section_must_be_a_heading_of_the_guide(tmp_path):
    path = _write(tmp_path, section="Issue: ZFS Pool Not Imprted")
    _, problems = _problems(path)
    assert problems == [(f"{path}:8: guide.section 'Issue: ZFS Pool Not Imprted' is not a heading of "
                        "troubleshooting-nixos-anywhere-vm-install.md (did you mean 'Issue: ZFS Pool Not Imported'?)")]


@pytest.mark.parametrize("playbook", ["playbooks/fix/no-such-playbook.py", "playbooks/boot.py", "../etc/passwd",
                                      "/work/main/playbooks/fix/load-keys.py"])
def test_fix_playbook_must_exist_under_playbooks_fix(tmp_path, playbook):
    fix = (f"fix:\n  risk: safe\n  summary: Import it.\n  playbook: {playbook}\n"
           "  steps:\n    - op: zfs.import_pool\n      args: {pool: rpool}\n")
    path = _write(tmp_path, fix=fix)
    _, problems = _problems(path)
    assert len(problems) == 1 and problems[0].startswith(f"{path}:23: fix.playbook: {playbook!r} does not exist"), problems
    assert "playbooks/fix/load-keys.py" in problems[0]  # names the playbooks that do exist


def test_an_existing_fix_playbook_is_ok(tmp_path):
    fix = ("fix:\n  risk: safe\n  summary: Import it.\n  playbook: playbooks/fix/import-pool.py\n"
           "  steps:\n    - op: zfs.import_pool\n      args: {pool: rpool}\n")
    assert _problems(_write(tmp_path, fix=fix))[1] == []


def test_cli_validate_file_uses_the_catalog(tmp_path, capsys):
    path = _write(tmp_path, id="pool-healthy")
    assert main(["validate", str(path)]) == 1
    assert f"{path}:1: duplicate id 'pool-healthy'" in capsys.readouterr().err
    assert main(["validate", str(_write(tmp_path))]) == 0
    assert main(["validate"]) == 0  # the catalog alone is still clean
    other = tmp_path / "other"
    other.mkdir()
    alone = _write(other, id="pool-healthy", depends_on="")
    assert main(["validate", "--alone", str(alone)]) == 0  # a catalog of its own: no duplicate
