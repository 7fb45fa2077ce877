"""inventory/lab.py: the guests `keystone-checks lab up` started and that still run, by role
(no VM needed: the `up` records are written here, one for a live process, one for a dead one)."""

from __future__ import annotations

import json
import os
import runpy
import subprocess

from kc_helpers import REPO


def _record(root, name, pid, role):
    d = root / "keystone-checks" / "lab" / "run" / "up" / name
    d.mkdir(parents=True)
    (d / "guest.json").write_text(json.dumps({"pid": pid}))
    (d / "inventory.py").write_text(f"{role} = [({name!r}, {{'role': {role!r}, 'ssh_port': 2222}})]\n")


def test_lab_inventory_lists_running_guests_by_role(tmp_path, monkeypatch, capsys):
    dead = subprocess.Popen(["true"])
    dead.wait()
    _record(tmp_path, "zfs21-deployed", os.getpid(), "deployed")
    _record(tmp_path, "zfs21-installer", os.getpid(), "installer")
    _record(tmp_path, "zfs21-gone", dead.pid, "deployed")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    groups = runpy.run_path(str(REPO / "inventory" / "lab.py"))
    assert groups["deployed"] == [("zfs21-deployed", {"role": "deployed", "ssh_port": 2222})]
    assert [name for name, _ in groups["installer"]] == ["zfs21-installer"]


def test_lab_inventory_says_how_to_start_a_guest(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    groups = runpy.run_path(str(REPO / "inventory" / "lab.py"))
    assert groups["deployed"] == [] and groups["installer"] == []
    assert "keystone-checks lab up" in capsys.readouterr().err
