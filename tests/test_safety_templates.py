"""Check files never run code: templates are plain ``{{ name }}`` substitution of host data.

Each known Jinja server-side-template-injection payload is put in ``expect``, in gather args and in
fix args of an otherwise valid check; ``keystone-checks validate`` and ``keystone-checks run`` must
reject it (file:line, the check's id, what to do) and the payload's marker file must never appear.
With the old Jinja environment the ``expect`` payloads ran during ``validate`` and the ``{% for %}``
payload (no undeclared names, so validation passed) ran at plan time of a run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kc_helpers import REPO, write_inventory

from keystone_checks.engine import templating

# {marker} is replaced by the file a successful payload would create.
PAYLOADS = {
    "cycler-globals-os": "{{ cycler.__init__.__globals__.os.popen('touch {marker}').read() }}",
    "lipsum-globals-os": "{{ lipsum.__globals__['os'].popen('touch {marker}').read() }}",
    "self-globals": "{{ self.__init__.__globals__ }}",
    "subclasses-loop": ("{% for x in ().__class__.__base__.__subclasses__() %}{% if x.__name__ == 'catch_warnings' %}"
                        "{{ x()._module.__builtins__['__import__']('os').popen('touch {marker}').read() }}"
                        "{% endif %}{% endfor %}"),
    "arithmetic": "{{ 7*7 }}",
    "filter": "{{ installer_marker | upper }}",
    "attribute": "{{ installer_marker.__class__ }}",
    "call": "{{ installer_marker.replace('a', 'b') }}",
    "comment": "{# hidden #}{{ installer_marker }}",
}

# A valid check (tests/fixtures/e2e_checks/marker-file-present.yaml) with one value replaced.
CHECK = """\
id: injected
title: Marker file exists
severity: critical
phases: [sweep]
roles: [deployed]
guide: {document: troubleshooting-build-and-deploy.md, section: "Error: \\"out of disk space\\""}
why: Template injection test.
gather:
  marker: {fact: files.PathInfo, args: {path: @gather@}}
expect:
  properties: {marker: {properties: {exists: {const: true}, type: {not: {const: @expect@}}}}}
fix:
  risk: safe
  steps:
    - op: pyinfra:files.file
      args: {path: @fix@, present: true, touch: false}
"""
LINES = {"gather": 9, "expect": 11, "fix": 16}
PLAIN = json.dumps("{{ installer_marker }}")


def write_check(directory: Path, where: str, payload: str) -> Path:
    values = {k: PLAIN for k in LINES}
    values[where] = json.dumps(payload)  # a JSON string is a YAML double-quoted scalar
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "injected.yaml"
    text = CHECK
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    path.write_text(text)
    return path


def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keystone_checks.frontends.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env={**os.environ, **env}, stdin=subprocess.DEVNULL)


def test_the_plain_check_is_valid(tmp_path):
    """The harness itself: without a payload the check validates (so rejections below are the payload's)."""
    path = write_check(tmp_path / "checks", "gather", "{{ installer_marker }}")
    done = cli("validate", str(path), env={})
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("where", sorted(LINES))
@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_validate_rejects_payload_and_runs_nothing(tmp_path, name, where):
    marker = tmp_path / "pwned"
    path = write_check(tmp_path / "checks", where, PAYLOADS[name].replace("{marker}", str(marker)))
    done = cli("validate", str(path), env={})
    assert not marker.exists(), f"{name} in {where} ran code during validate"
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert f"injected.yaml:{LINES[where]}: check 'injected': {where}" in done.stderr, done.stderr
    assert "not allowed" in done.stderr or "unknown host data" in done.stderr, done.stderr


@pytest.mark.parametrize("where", sorted(LINES))
@pytest.mark.parametrize("name", ["cycler-globals-os", "subclasses-loop", "lipsum-globals-os"])
def test_run_rejects_payload_and_runs_nothing(tmp_path, name, where):
    marker = tmp_path / "pwned"
    checks = tmp_path / "checks"
    write_check(checks, where, PAYLOADS[name].replace("{marker}", str(marker)))
    inventory = write_inventory(tmp_path / "inv.py", {"@local": {"role": "deployed",
                                                                "installer_marker": str(tmp_path / "absent")}})
    done = cli("run", "sweep", "-i", str(inventory), "--fix", "--dry", "--report", "json:" + str(tmp_path / "r.json"),
               env={"KEYSTONE_CHECKS_DIR": str(checks), "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert not marker.exists(), f"{name} in {where} ran code during a run"
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert f"injected.yaml:{LINES[where]}: check 'injected'" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_render_substitutes_plain_placeholders_only():
    context = {"boot_mount": "/boot", "min_disk_bytes": 7, "pool": "007", "targets": [{"name": "a"}]}
    assert templating.render("{{ min_disk_bytes }}", context) == 7  # the typed value
    assert templating.render("{{pool}}", context) == "007"  # never literal-evaluated
    assert templating.render("/mnt{{ boot_mount }}/x", context) == "/mnt/boot/x"
    assert templating.render({"a": ["{{ targets }}"]}, context) == {"a": [[{"name": "a"}]]}
    assert templating.render("no template {here}", context) == "no template {here}"
    with pytest.raises(templating.TemplateProblem, match="'disk' is undefined"):
        templating.render("{{ disk }}", context)
    for payload in PAYLOADS.values():
        with pytest.raises(templating.TemplateProblem):
            templating.render(payload.replace("{marker}", "/nonexistent/x"), {**context, "installer_marker": "/m"})
